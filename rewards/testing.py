"""A tiny causal LM and tokenizer built locally, for the credit tests and ``bench/credit.py``.

Nothing is downloaded: a byte-level BPE vocabulary is trained with ``tokenizers`` on the given
text, wrapped as a ``PreTrainedTokenizerFast`` with ChatML special tokens and chat template, and
paired with a seeded random ``Qwen2Config`` model — thin defaults over :mod:`agentgym.models`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentgym.models import build_tiny_model, train_tokenizer


def tiny_tokenizer(corpus: Iterable[str], *, vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus`` with ChatML tokens and template."""
    return train_tokenizer(corpus, vocab_size=vocab_size, min_frequency=1)


def tiny_model(tokenizer: Any, *, hidden: int = 48, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A randomly initialised (seeded) ``Qwen2ForCausalLM`` sized for CPU tests."""
    model, _ = build_tiny_model(
        tokenizer=tokenizer,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        max_position_embeddings=2048,
        seed=seed,
    )
    return model
