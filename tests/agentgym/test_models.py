"""Tiny model builder: tokenizer training, seeded init, save/load round trip, env corpus, cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

from agentgym.env import StepResult, TextEnv
from agentgym.errors import ConfigError
from agentgym.models import (
    CHAT_TEMPLATE,
    ENDOFTEXT,
    IM_END,
    IM_START,
    build_tiny_model,
    builtin_corpus,
    default_tiny_model,
    env_corpus,
    load_model,
    save_tiny_model,
    stop_token_ids,
    train_tokenizer,
)


class CorridorEnv(TextEnv):
    """A legit test env (not a fake of any real one): walk a corridor of named rooms to the exit.

    Used because env_corpus must be tested on an env with admissible actions even when the
    TextWorld package of the repo is not registered.
    """

    ROOMS = ("vestibule", "scriptorium", "refectory", "dormitory", "cloister")
    action_format = "go forward | go back | look"

    def task_ids(self, split: str) -> Sequence[str]:
        return ["corridor-0", "corridor-1"]

    def _obs(self) -> str:
        return f"You are in the {self.ROOMS[self.pos]}. A lantern flickers on the wall."

    def _info(self, valid: bool = True) -> dict[str, Any]:
        actions = ["look", "go forward"] + (["go back"] if self.pos else [])
        won = self.pos == len(self.ROOMS) - 1
        return {"admissible_actions": actions, "valid_action": valid, "won": won, "state_key": str(self.pos)}

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self.pos = int(task_id[-1])
        return self._obs(), self._info()

    def _step(self, action: str) -> StepResult:
        if action not in self._info()["admissible_actions"]:
            return self.invalid_action(f"Unknown action {action!r}.", info=self._info(False))
        self.pos += {"go forward": 1, "go back": -1}.get(action, 0)
        info = self._info()
        return self._obs(), float(info["won"]), info["won"], False, info


TEXTS = builtin_corpus()


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(TEXTS, hidden_size=32, num_layers=2, num_heads=4, vocab_size=600, seed=3)


# ---- tokenizer ------------------------------------------------------------------------------
def test_tokenizer_specials_template_and_roundtrip():
    tok = train_tokenizer(TEXTS, vocab_size=600)
    assert 256 + 3 <= len(tok) <= 600
    assert tok.eos_token == ENDOFTEXT and tok.pad_token == ENDOFTEXT
    for special in (IM_START, IM_END, ENDOFTEXT):  # each special is a single token
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert stop_token_ids(tok) == [tok.eos_token_id, tok.convert_tokens_to_ids(IM_END)]
    text = "You are in a kitchen. Ünïcödé ☃ never seen!"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: any text round-trips
    # merges were learned from the corpus: a frequent word is shorter than its bytes
    assert len(tok(" kitchen")["input_ids"]) < len(" kitchen")

    msgs = [{"role": "system", "content": "Play."}, {"role": "user", "content": "go north"}]
    plain = tok.apply_chat_template(msgs, tokenize=False)
    assert plain == "<|im_start|>system\nPlay.<|im_end|>\n<|im_start|>user\ngo north<|im_end|>\n"
    with_prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert with_prompt == plain + "<|im_start|>assistant\n"
    assert tok.chat_template == CHAT_TEMPLATE


def test_tokenizer_training_is_deterministic_and_validates():
    a, b = train_tokenizer(TEXTS, vocab_size=500), train_tokenizer(TEXTS, vocab_size=500)
    assert a.get_vocab() == b.get_vocab()
    with pytest.raises(ConfigError, match="at least 259"):
        train_tokenizer(TEXTS, vocab_size=100)
    with pytest.raises(ConfigError, match="non-empty"):
        train_tokenizer(["", ""])


# ---- model ----------------------------------------------------------------------------------
def test_build_tiny_model_families_and_seeding(tiny):
    from transformers import LlamaConfig, Qwen2Config

    model, tok = tiny
    assert isinstance(model.config, Qwen2Config)
    assert model.config.vocab_size == len(tok) and model.config.hidden_size == 32
    assert model.config.num_hidden_layers == 2

    same, _ = build_tiny_model(TEXTS, hidden_size=32, vocab_size=600, seed=3, tokenizer=tok)
    other, _ = build_tiny_model(TEXTS, hidden_size=32, vocab_size=600, seed=4, tokenizer=tok)
    w = model.get_input_embeddings().weight
    assert torch.equal(w, same.get_input_embeddings().weight)
    assert not torch.equal(w, other.get_input_embeddings().weight)

    torch.manual_seed(123)
    before = torch.rand(1)
    llama, _ = build_tiny_model(family="llama", hidden_size=32, num_heads=2, tokenizer=tok)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)  # init used a forked RNG; the global one is untouched
    assert isinstance(llama.config, LlamaConfig)
    ids = torch.tensor([tok("go north")["input_ids"]])
    assert llama(ids).logits.shape == (1, ids.shape[1], len(tok))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "gpt5"}, "family='gpt5'"),
        ({"hidden_size": 30, "num_heads": 4}, "multiple of num_heads"),
        ({"num_layers": 0}, "num_layers must be a positive integer"),
    ],
)
def test_build_tiny_model_rejects_bad_config(tiny, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_tiny_model(tokenizer=tiny[1], **kwargs)


def test_save_load_roundtrip_same_logits(tiny, tmp_path):
    model, tok = tiny
    path = save_tiny_model(model, tok, tmp_path / "ckpt", note="test")
    loaded, loaded_tok = load_model(path)
    text = tok.apply_chat_template([{"role": "user", "content": "open the fridge"}], tokenize=False)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    assert loaded_tok(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
    assert loaded_tok.chat_template == tok.chat_template and loaded_tok.eos_token == ENDOFTEXT
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=1e-6)
    assert type(loaded).__name__ == type(model).__name__


def test_load_model_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(tmp_path)


# ---- env corpus -----------------------------------------------------------------------------
def test_env_corpus_plays_admissible_actions_and_feeds_tokenizer():
    env = CorridorEnv()
    texts = env_corpus([env], episodes=4, max_turns=6, seed=0)
    assert env_corpus([CorridorEnv()], episodes=4, max_turns=6, seed=0) == texts  # seeded
    assert env_corpus([CorridorEnv()], episodes=4, max_turns=6, seed=1) != texts
    assert texts[0].startswith("You are in the")
    observations = [t for t in texts if t.startswith("You are in the")]
    actions = [t for t in texts if not t.startswith("You are in the")]
    assert len(observations) == len(actions) + 4  # one reset observation per episode, one per step
    assert actions and set(actions) <= {"look", "go forward", "go back"}
    assert not any("Unknown action" in t for t in texts)  # only admissible actions were played

    # a tokenizer trained on the env's own text learns its words as whole tokens
    tok = train_tokenizer(texts * 5, vocab_size=400)
    assert len(tok(" lantern", add_special_tokens=False)["input_ids"]) == 1
    with pytest.raises(ConfigError, match="wrap it"):
        env_corpus("textworld")


@pytest.mark.parametrize("name", ["textworld-simple", "countdown"])
def test_env_corpus_through_the_registry(name):
    from agentgym.errors import RegistryError
    from agentgym.registry import resolve

    try:
        resolve(name)
    except RegistryError:
        pytest.skip(f"the {name} env is not registered in this checkout")
    texts = env_corpus([name], episodes=2, max_turns=5, seed=0)
    assert len(texts) >= 4 and all(isinstance(t, str) and t for t in texts)
    assert env_corpus([name], episodes=2, max_turns=5, seed=0) == texts


# ---- cached default -------------------------------------------------------------------------
def test_default_tiny_model_builds_once_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    path = default_tiny_model()
    assert path.parent == tmp_path / "models" and path.name.startswith("tiny-qwen2-")
    stamp = (path / "config.json").stat().st_mtime_ns
    assert default_tiny_model() == path
    assert (path / "config.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    model, tok = load_model(path)
    assert model.config.vocab_size == len(tok) and tok.chat_template == CHAT_TEMPLATE
    explicit = default_tiny_model(tmp_path / "mine")
    assert (explicit / "agentgym_model.json").is_file()
