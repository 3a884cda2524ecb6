"""Words of a text and of encoded rows: character spans of whitespace words, the word of every token
(word_ids, from offsets or from per-id tables), and word labels spread over tokens (align_labels)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

import torch

from ..losses import IGNORE_INDEX

_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated words of the original string, as (start, end) character spans."""
    return [m.span() for m in _WORD.finditer(text)]


def word_ids_for(text: str, offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """Map each token span to the index of the whitespace-separated word it starts in.

    A token whose span starts on whitespace (a lone SentencePiece "▁" standing for a space) belongs to
    the word that follows it, since that is the word the "▁" marks the beginning of.
    """
    starts = [s for s, _ in word_spans(text)]
    ends = [e for _, e in word_spans(text)]
    out: list[int | None] = []
    for start, end in offsets:
        k = bisect.bisect_right(starts, start) - 1
        if k < 0 or start >= ends[k]:
            k = min(k + 1, len(starts) - 1) if starts else None
        out.append(k)
    return out


def align_labels(word_labels, word_ids, *, label_all_subtokens: bool = False, ignore_index: int = IGNORE_INDEX):
    """Spread word-level labels (NER tags) over tokens.

    The first token of each word gets the word's label; later tokens of the same word and special or
    padding tokens (word id None) get `ignore_index` (-100, what torch's cross_entropy skips), unless
    `label_all_subtokens` is set. Given a batch (a list of word_ids lists, e.g. `batch.word_ids`) it
    returns a LongTensor [B, T]; given one sequence it returns a list.
    """
    if word_ids and isinstance(word_ids[0], (list, tuple)):
        if len(word_labels) != len(word_ids):
            raise ValueError(f"{len(word_labels)} label lists for {len(word_ids)} sequences")
        rows = [_align_one(lab, ids, label_all_subtokens, ignore_index) for lab, ids in zip(word_labels, word_ids)]
        return torch.tensor(rows, dtype=torch.long)
    return _align_one(word_labels, word_ids, label_all_subtokens, ignore_index)


def _align_one(labels, word_ids, label_all, ignore_index) -> list[int]:
    out, previous = [], None
    for wid in word_ids:
        if wid is None:
            out.append(ignore_index)
        elif wid >= len(labels):
            raise ValueError(f"word id {wid} but only {len(labels)} word labels")
        elif wid != previous or label_all:
            out.append(labels[wid])
        else:
            out.append(ignore_index)
        previous = wid
    return out


def word_ids_from_tables(ids: torch.Tensor, special: torch.Tensor, starts: torch.Tensor | None = None,
                         ends: torch.Tensor | None = None) -> torch.Tensor:
    """Word index of every token of encoded rows (B T), -1 on special tokens, from per-id tables: `starts`
    (the token opens a word: SentencePiece's leading ▁) or `ends` (the token closes one: BPE's </w>).
    A special token is a word boundary on both sides."""
    is_special = special[ids]
    if starts is not None:
        opens = starts[ids].clone()
    else:
        opens = torch.ones_like(is_special)
        opens[:, 1:] = ends[ids[:, :-1]]
    opens |= is_special
    opens[:, 1:] |= is_special[:, :-1]
    opens[:, 0] = True
    return (opens.long().cumsum(1) - 1).masked_fill(is_special, -1)
