"""A tiny causal LM and tokenizer built locally, for the credit tests and ``bench/credit.py``.

Nothing is downloaded: a byte-level BPE vocabulary is trained with ``tokenizers`` on the given
text, wrapped as a ``PreTrainedTokenizerFast`` with ChatML special tokens and chat template, and
paired with a seeded random ``Qwen2Config`` model. (``agentgym.models`` offers the same for the
whole project; this copy keeps ``rewards`` free of a dependency on it while both evolve.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(corpus: Iterable[str], *, vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus`` with ChatML tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(tokenizer: Any, *, hidden: int = 48, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A randomly initialised (seeded) ``Qwen2ForCausalLM`` sized for CPU tests."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.eval()
    return model
