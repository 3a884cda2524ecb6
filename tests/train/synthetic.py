"""Synthetic corpora and tiny models for the training tests (all seeded, built in the test run).

Vocabulary in XLM's layout (formats.md §5): <s>=0, </s>=1, <pad>=2, <unk>=3, <special0>=4, <mask>=5, then
words. The "pattern" language counts upward modulo K (a masked word is determined by either neighbour);
language B maps each word of language A through a fixed permutation, position by position.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from xlmlib import MaskedLM, ModelConfig
from xlmlib.train.text import WordVocab

SPECIALS = ["<s>", "</s>", "<pad>", "<unk>", "<special0>", "<mask>"]
K = 24
WORDS_A = [f"a{i}" for i in range(K)]
WORDS_B = [f"b{i}" for i in range(K)]
VOCAB = WordVocab(SPECIALS + WORDS_A + WORDS_B)
PERM = random.Random(7).sample(range(K), K)  # word a_i of language A is b_PERM[i] in language B


def tiny_config(*, n_langs: int = 2, dropout: float = 0.0, dim: int = 64, **changes) -> ModelConfig:
    return ModelConfig(vocab_size=VOCAB.vocab_size, dim=dim, n_layers=2, n_heads=4, ffn_dim=2 * dim,
                       max_positions=128, n_langs=n_langs, langs=("en", "fr")[:n_langs] if n_langs > 1 else (),
                       dropout=dropout, attention_dropout=dropout, **changes)


def tiny_model(cls=MaskedLM, *, seed: int = 0, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = cls(tiny_config(**config))
    model.reset_parameters()
    return model


def save_tiny(folder: Path, cls=MaskedLM, **config) -> Path:
    """A local checkpoint folder (save_pretrained) plus its word list, as the CLI tests pass them."""
    tiny_model(cls, **config).save_pretrained(folder)
    VOCAB.save(folder / "vocab.txt")
    return folder


def pattern_lines(n: int, *, seed: int, prefix: str = "a") -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start, length = rng.randrange(K), rng.randint(6, 14)
        out.append(" ".join(f"{prefix}{(start + j) % K}" for j in range(length)))
    return out


def random_pairs(n: int, *, seed: int) -> list[tuple[str, str]]:
    """Language A: uniformly random words (nothing to learn from context); B: the word-by-word image."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = [rng.randrange(K) for _ in range(rng.randint(5, 10))]
        pairs.append((" ".join(f"a{i}" for i in a), " ".join(f"b{PERM[i]}" for i in a)))
    return pairs


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path

