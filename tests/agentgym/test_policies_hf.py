"""HFPolicy: batched generation, stop tokens, seeding, log-probs that a teacher-forced pass reproduces."""

from __future__ import annotations

import math

import pytest
import torch

from agentgym.errors import ConfigError, PolicyError
from agentgym.models import IM_END, build_tiny_model, builtin_corpus, save_tiny_model
from agentgym.policies import make_policy
from agentgym.policies.base import PolicyInput
from agentgym.policies.hf import HFPolicy, SamplingParams, sequence_logprobs

CONVERSATIONS = [
    [{"role": "user", "content": "You are in a kitchen. You see a fridge."}],
    [
        {"role": "system", "content": "You are an agent playing a text game."},
        {"role": "user", "content": "-= Cellar =- You are in a cellar. Exits lead north and south."},
        {"role": "assistant", "content": "go north"},
        {"role": "user", "content": "You go north. You can't go that way."},
    ],
    [{"role": "user", "content": "x"}],
]
# what the trained model must learn to answer (observation -> action)
TEACH = {
    "You are in a kitchen. You see a fridge.": "open fridge",
    "You are in a cellar. Exits lead north.": "go north",
    "On the table, you see a key.": "take key from table",
}


def inputs(convs):
    return [PolicyInput(messages=m) for m in convs]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(
        builtin_corpus(), hidden_size=32, num_layers=2, num_heads=4, vocab_size=600, seed=0
    )


@pytest.fixture(scope="module")
def trained():
    """A tiny model fine-tuned (with sequence_logprobs as the loss) to answer TEACH and stop."""
    model, tok = build_tiny_model(builtin_corpus(), hidden_size=32, num_layers=2, vocab_size=600, seed=1)
    im_end = tok.convert_tokens_to_ids(IM_END)
    convs = [[{"role": "user", "content": obs}] for obs in TEACH]
    targets = [tok(a, add_special_tokens=False)["input_ids"] + [im_end] for a in TEACH.values()]
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    first = None
    for _ in range(30):
        lps = sequence_logprobs(model, tok, convs, targets, grad=True)
        loss = -torch.cat(lps).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert loss.item() < first / 10, (first, loss.item())  # learning happened
    return model, tok


def test_batched_act_returns_tokens_logprobs_and_prompt_sizes(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, max_new_tokens=10, seed=0)
    outs = policy.act(inputs(CONVERSATIONS))
    assert len(outs) == 3
    for out, conv in zip(outs, CONVERSATIONS):
        prompt = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        assert out.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= len(out.token_ids) <= 10 and len(out.logprobs) == len(out.token_ids)
        assert all(math.isfinite(lp) and lp <= 0 for lp in out.logprobs)
        assert tok.pad_token_id not in out.token_ids[:-1]  # no padding inside the action
        assert out.text == tok.decode(out.token_ids, skip_special_tokens=True).strip()
    assert len({o.prompt_tokens for o in outs}) == 3  # the batch really had different lengths


def test_act_leaves_a_training_model_in_train_mode(tiny):
    model, tok = tiny
    model.train()
    try:
        HFPolicy(model, tok, max_new_tokens=2).act(inputs(CONVERSATIONS[:1]))
        assert model.training
    finally:
        model.eval()


def test_seeded_sampling_is_reproducible(tiny):
    model, tok = tiny
    a = HFPolicy(model, tok, max_new_tokens=8, seed=7).act(inputs(CONVERSATIONS))
    b = HFPolicy(model, tok, max_new_tokens=8, seed=7).act(inputs(CONVERSATIONS))
    c = HFPolicy(model, tok, max_new_tokens=8, seed=8).act(inputs(CONVERSATIONS))
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert [o.token_ids for o in a] != [o.token_ids for o in c]
    policy = HFPolicy(model, tok, max_new_tokens=8, seed=7)
    first, second = policy.act(inputs(CONVERSATIONS)), policy.act(inputs(CONVERSATIONS))
    assert [o.token_ids for o in first] != [o.token_ids for o in second]  # fresh draws per call
    policy.reset(7)
    assert [o.token_ids for o in policy.act(inputs(CONVERSATIONS))] == [o.token_ids for o in a]


@pytest.mark.parametrize(("temperature", "greedy"), [(1.0, False), (0.7, False), (1.0, True)])
def test_generation_logprobs_match_teacher_forced(tiny, temperature, greedy):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=temperature, greedy=greedy, max_new_tokens=12, seed=3)
    outs = policy.act(inputs(CONVERSATIONS))
    recomputed = sequence_logprobs(
        model, tok, CONVERSATIONS, [o.token_ids for o in outs], temperature=1.0 if greedy else temperature
    )
    for out, lp in zip(outs, recomputed):
        torch.testing.assert_close(torch.tensor(out.logprobs), lp, rtol=0, atol=1e-4)
    if greedy:  # greedy picks the argmax of the teacher-forced distribution at every step
        for out, conv in zip(outs, CONVERSATIONS):
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            prompt = tok(text)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([prompt + out.token_ids])).logits[0]
            argmax = logits[len(prompt) - 1 : len(prompt) - 1 + len(out.token_ids)].argmax(-1)
            assert argmax.tolist() == out.token_ids


def test_trained_model_stops_at_im_end_and_batches_like_single(trained):
    model, tok = trained
    im_end = tok.convert_tokens_to_ids(IM_END)
    policy = HFPolicy(model, tok, greedy=True, max_new_tokens=20)
    convs = [[{"role": "user", "content": obs}] for obs in TEACH]
    outs = policy.act(inputs(convs))
    assert [o.text for o in outs] == list(TEACH.values())
    for out in outs:
        assert out.token_ids[-1] == im_end and out.token_ids.count(im_end) == 1
        assert policy.finished(out) and len(out.logprobs) == len(out.token_ids)
    singles = [policy.act(inputs([c]))[0] for c in convs]  # left padding must not change results
    assert [s.token_ids for s in singles] == [o.token_ids for o in outs]
    for s, o in zip(singles, outs):
        torch.testing.assert_close(torch.tensor(s.logprobs), torch.tensor(o.logprobs), rtol=0, atol=1e-4)
    # the taught sequences are likely under sampling too, and their logprobs agree with generation
    sampled = HFPolicy(model, tok, temperature=1.0, max_new_tokens=20, seed=0).act(inputs(convs))
    lp = sequence_logprobs(model, tok, convs, [o.token_ids for o in sampled])
    for out, ref in zip(sampled, lp):
        torch.testing.assert_close(torch.tensor(out.logprobs), ref, rtol=0, atol=1e-4)


def test_checkpoint_generation_defaults_do_not_leak_into_sampling(tiny):
    from transformers import GenerationConfig

    _, tok = tiny
    model, _ = build_tiny_model(hidden_size=32, tokenizer=tok, seed=5)
    # a checkpoint whose defaults would make sampling greedy (top_k=1) and penalise repeats
    model.generation_config = GenerationConfig(do_sample=True, top_k=1, repetition_penalty=5.0)
    greedy = HFPolicy(model, tok, greedy=True, max_new_tokens=8).act(inputs(CONVERSATIONS))
    sampled = HFPolicy(model, tok, temperature=1.0, max_new_tokens=8, seed=0).act(inputs(CONVERSATIONS))
    assert [o.token_ids for o in sampled] != [o.token_ids for o in greedy]
    plain, _ = build_tiny_model(hidden_size=32, tokenizer=tok, seed=5)
    reference = HFPolicy(plain, tok, temperature=1.0, max_new_tokens=8, seed=0).act(inputs(CONVERSATIONS))
    assert [o.token_ids for o in sampled] == [o.token_ids for o in reference]


def test_policy_from_checkpoint_dir_and_make_policy(tiny, tmp_path):
    model, tok = tiny
    path = save_tiny_model(model, tok, tmp_path / "ckpt")
    direct = HFPolicy(model, tok, max_new_tokens=6, seed=2).act(inputs(CONVERSATIONS))
    from_dir = HFPolicy(str(path), max_new_tokens=6, seed=2).act(inputs(CONVERSATIONS))
    spec = make_policy(f"hf:{path}", seed=2, max_new_tokens=6).act(inputs(CONVERSATIONS))
    assert [o.token_ids for o in from_dir] == [o.token_ids for o in direct] == [o.token_ids for o in spec]


def test_validation_errors(tiny):
    model, tok = tiny
    with pytest.raises(ConfigError, match="temperature"):
        HFPolicy(model, tok, temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        HFPolicy(model, tok, top_p=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(ConfigError, match="tokenizer"):
        HFPolicy(model)
    with pytest.raises(ConfigError, match="conversations"):
        sequence_logprobs(model, tok, CONVERSATIONS, [[1]])
    short, short_tok = build_tiny_model(hidden_size=32, max_position_embeddings=32, tokenizer=tok)
    policy = HFPolicy(short, short_tok, max_new_tokens=8)
    with pytest.raises(PolicyError, match="exceeds the model's 32 positions"):
        policy.act(inputs([[{"role": "user", "content": "go north " * 20}]]))
    with pytest.raises(PolicyError, match="no messages"):
        policy.act([PolicyInput(messages=[])])
