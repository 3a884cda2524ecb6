"""What training needs from a tokenizer: `encode(text, lang) -> list[int]` (no framing) and `vocab_size`.

Special ids (pad, </s>, <mask>, ...) come from the model's config, not the tokenizer, so anything with
these two members works: xlmlib.Tokenizer (through TokenizerAdapter), or WordVocab, a whitespace
tokenizer over a fixed word list for synthetic corpora, tests and notebooks. Every corpus knows its
language (pretraining --langs, the lang column of fine-tuning data) and passes it: XLM's Moses rules
(apostrophes, non-breaking prefixes, Romanian, zh/th/ja segmentation) depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from ..atomic import write_text

VOCAB_FILE = "vocab.txt"


def has_tokenizer(folder: Path) -> bool:
    """Whether a folder holds tokenizer files (checkpoint.load.tokenizer_files_in, XLM's codes_* included)."""
    from ..checkpoint.load import tokenizer_files_in

    return bool(tokenizer_files_in(folder))


class TextEncoder(Protocol):
    vocab_size: int

    def encode(self, text: str, lang: str | None = None) -> list[int]: ...

    def word_ids_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Word index per token of encoded rows (B T), -1 on specials (whole-word masking)."""


class WordVocab:
    """Whitespace tokenizer over a word list: word i of `words` is id i; unknown words map to unk_id.

    A vocabulary file has one word per line (the line number, from 0, is the id), specials included.
    """

    def __init__(self, words: Sequence[str], *, unk_id: int = 3):
        self.words = list(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        if len(self.ids) != len(self.words):
            raise ValueError("the word list has duplicates")
        if not 0 <= unk_id < len(self.words):
            raise ValueError(f"unk_id {unk_id} is outside the vocabulary of {len(self.words)} words")
        self.unk_id = unk_id
        self.vocab_size = len(self.words)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, unk_id: int = 3) -> WordVocab:
        return cls(Path(path).read_text(encoding="utf-8").splitlines(), unk_id=unk_id)

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, "".join(w + "\n" for w in self.words))

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """DIR/vocab.txt, which load_text_encoder(DIR) finds again."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.save(Path(directory) / VOCAB_FILE)

    def encode(self, text: str, lang: str | None = None) -> list[int]:
        """Whitespace words; `lang` is accepted for the TextEncoder interface and changes nothing here."""
        return [self.ids.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    def word_ids_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Every token is a whole word here."""
        return torch.arange(ids.shape[1]).expand_as(ids)


class TokenizerAdapter:
    """An xlmlib.Tokenizer seen as a TextEncoder: the ids of a sentence without <s>/</s> framing, which
    the objectives add themselves."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)

    def encode(self, text: str, lang: str | None = None) -> list[int]:
        return list(self.tokenizer.encode(text, lang=lang or None, add_special_tokens=False))

    def word_ids_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.word_ids_from_ids(ids)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        self.tokenizer.save_pretrained(directory)


def load_text_encoder(src: str) -> TextEncoder:
    """A vocabulary file (one word per line, *.txt) gives a WordVocab; anything else goes to
    xlmlib.Tokenizer.from_pretrained (a tokenizer folder, model folder or hub name)."""
    path = Path(src)
    if path.is_file() and path.suffix == ".txt":
        return WordVocab.from_file(path)
    if path.is_dir() and (path / VOCAB_FILE).is_file() and not has_tokenizer(path):
        return WordVocab.from_file(path / VOCAB_FILE)  # a folder a WordVocab was saved into
    from ..tokenize import Tokenizer

    return TokenizerAdapter(Tokenizer.from_pretrained(src))
