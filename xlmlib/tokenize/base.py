"""What both tokenizers share: batching, special tokens, truncation, padding, offsets and word_ids.

A subclass supplies `_encode_texts` (text -> ids, and character spans when asked) and the layout of
special tokens; everything a `model(**batch)` call needs is assembled here.
"""

from __future__ import annotations

import bisect
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
IGNORE_INDEX = -100
CONFIG_NAME = "tokenizer_config.json"
_WORD = re.compile(r"\S+")


class TruncationWarning(UserWarning):
    """Text was cut to fit a length limit (one warning per call, with how many sequences and to what length)."""


def warn_truncated(n_cut: int, n_total: int, length: int, where: str, *, stacklevel: int = 3) -> None:
    """One warning for all the sequences a call cut, never one per sequence."""
    if n_cut:
        warnings.warn(f"{where}: truncated {n_cut} of {n_total} sequences to {length} tokens "
                      "(truncation=False keeps them whole)", TruncationWarning, stacklevel=stacklevel)


class Batch(dict):
    """The tokenizer output: a dict holding only model inputs, so that `model(**batch)` works.

    `offsets` and `word_ids` are not model inputs; they live beside the keys and are reachable as
    attributes or as `batch["offsets"]` / `batch["word_ids"]` (through `__missing__`), without being
    unpacked by `**batch`.
    """

    _EXTRAS = ("offsets", "word_ids")

    def __init__(self, data: dict, offsets: Any = None, word_ids: Any = None):
        super().__init__(data)
        self.offsets = offsets
        self.word_ids = word_ids

    def __missing__(self, key):
        if key in self._EXTRAS and getattr(self, key) is not None:
            return getattr(self, key)
        raise KeyError(key)

    def to(self, device) -> Batch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()}
        offsets = self.offsets.to(device) if isinstance(self.offsets, torch.Tensor) else self.offsets
        return Batch(moved, offsets, self.word_ids)


def check_text(text: Any, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, got {type(text).__name__}")
    return text


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


def strip_framing(ids: list[int], text_pair) -> list[int]:
    """The ids of one framed text (<s> A </s>) without the frame."""
    if text_pair is not None:
        raise ValueError("add_special_tokens=False is for single texts: a pair needs its separators")
    return ids[1:-1]


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing tokenizer file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt tokenizer file {path}: {err}") from None


def truncate_pair(a: list, b: list | None, n_remove: int, strategy: str) -> tuple[list, list | None]:
    """Drop `n_remove` tokens from the end of a and/or b (each list holds per-token items)."""
    if n_remove <= 0:
        return a, b
    if strategy == "longest_first":
        if b is None:
            return a[: max(len(a) - n_remove, 0)], None
        la, lb = _longest_first(len(a), len(b), n_remove)
        return a[:la], b[:lb]
    target_is_b = strategy == "only_second"
    if target_is_b and b is None:
        raise ValueError("truncation='only_second' needs a text_pair")
    seq = b if target_is_b else a
    if n_remove > len(seq):
        raise ValueError(f"cannot truncate {n_remove} tokens with {strategy!r}: that sequence has {len(seq)}")
    seq = seq[: len(seq) - n_remove]
    return (a, seq) if target_is_b else (seq, b)


def _longest_first(la: int, lb: int, n: int) -> tuple[int, int]:
    """Lengths left after removing n tokens one at a time from the longer side, ties from the second.

    That is transformers' rule (tokenization_utils_base.truncate_sequences), in closed form: first
    even the two out, then take alternately, the second side first.
    """
    if n > la + lb:
        raise ValueError(f"cannot remove {n} tokens from sequences of {la} and {lb}")
    gap = min(n, abs(la - lb))
    la, lb = (la - gap, lb) if la > lb else (la, lb - gap)
    rest = n - gap
    return la - rest // 2, lb - (rest + 1) // 2


def resolve_truncation(truncation: bool | str) -> str | None:
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None:
        return None
    if truncation not in TRUNCATION_STRATEGIES:
        raise ValueError(f"truncation must be a bool or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
    return truncation


class BaseTokenizer:
    """Turns texts into model inputs. Subclasses set the special ids and implement `_encode_one`."""

    model_max_length = 512
    bos_id = eos_id = pad_id = unk_id = mask_id = 0
    # Tokens between the two segments of a pair: XLM-R puts two </s>, XLM one (formats.md 2 and 3).
    pair_middle: tuple[int, ...] = ()

    # -- what a subclass provides -------------------------------------------------------------
    def _encode_one(self, text: str, lang: str | None, with_offsets: bool):
        """Return (ids, spans or None) for one text, without special tokens."""
        raise NotImplementedError

    def _encode_flat(self, texts: list[str], langs: list[str | None]):
        """All ids of a batch as one int64 array plus per-text lengths (no special tokens)."""
        import numpy as np

        ids = [self._encode_one(t, lg, False)[0] for t, lg in zip(texts, langs)]
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lens.sum()))
        return flat, lens

    def _lang_ids(self, lang, n: int) -> list[str | None]:
        """Per-text language codes; subclasses validate them."""
        if lang is None or isinstance(lang, str):
            return [lang] * n
        lang = list(lang)
        if len(lang) != n:
            raise ValueError(f"lang has {len(lang)} entries for {n} texts")
        return lang

    def _langs_tensor_values(self, langs: list[str | None]) -> list[int] | None:
        """Language-embedding ids per text, or None when the checkpoint has no language embeddings."""
        return None

    # -- the public call ----------------------------------------------------------------------
    def __call__(self, texts, text_pair=None, *, lang=None, padding=True, truncation=True, max_length=None,
                 return_tensors="pt", return_offsets=False) -> Batch:
        single = isinstance(texts, str)
        first = _as_text_list(texts, "texts")
        second = None if text_pair is None else _as_text_list(text_pair, "text_pair")
        if second is not None and len(second) != len(first):
            raise ValueError(f"{len(first)} texts but {len(second)} text_pair entries")
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        langs = self._lang_ids(lang, len(first))
        max_len = self.model_max_length if max_length is None else int(max_length)
        strategy = resolve_truncation(truncation)
        pad_to = _resolve_padding(padding, max_len)
        if second is None and not return_offsets:
            flat, lens = self._encode_flat(first, langs)
            ids, mask = self._assemble_flat(flat, lens, max_len if strategy else None, pad_to)
            rows, n_cut = None, int((lens + 2 > max_len).sum()) if strategy else 0
        else:
            rows, n_cut = self._rows(first, second, langs, return_offsets, max_len, strategy)
            ids, mask = _pad_rows([r[0] for r in rows], self.pad_id, pad_to)
        # The tokenizer's documented behaviour: truncation=True cuts to max_length (model_max_length) and says so.
        warn_truncated(n_cut, len(first), max_len, type(self).__name__)
        rows = rows if return_offsets else None
        return self._finish(ids, mask, rows, first, second, langs, return_tensors, single)

    def _rows(self, first, second, langs, with_offsets, max_len, strategy):
        enc_a = [self._encode_one(t, lg, with_offsets) for t, lg in zip(first, langs)]
        enc_b = [None] * len(first) if second is None else [
            self._encode_one(t, lg, with_offsets) for t, lg in zip(second, langs)]
        rows, n_cut = [], 0
        for a, b in zip(enc_a, enc_b):
            pa = list(zip(a[0], a[1] or [None] * len(a[0])))
            pb = None if b is None else list(zip(b[0], b[1] or [None] * len(b[0])))
            n_special = 2 if pb is None else 2 + len(self.pair_middle)
            excess = len(pa) + len(pb or ()) + n_special - max_len
            if strategy is not None:
                pa, pb = truncate_pair(pa, pb, excess, strategy)
                n_cut += excess > 0
            rows.append(self._with_specials(pa, pb))
        return rows, n_cut

    def _with_specials(self, pa, pb):
        """(ids, spans, segment) for one example; spans/segment are None on special tokens."""
        ids = [self.bos_id] + [i for i, _ in pa] + [self.eos_id]
        spans = [None] + [s for _, s in pa] + [None]
        segment = [None] + [0] * len(pa) + [None]
        if pb is not None:
            ids += list(self.pair_middle[1:]) + [i for i, _ in pb] + [self.eos_id]
            spans += [None] * (len(self.pair_middle) - 1) + [s for _, s in pb] + [None]
            segment += [None] * (len(self.pair_middle) - 1) + [1] * len(pb) + [None]
        return ids, spans, segment

    def _assemble_flat(self, flat, lens, max_len, pad_to):
        """Vectorised `<s> ids </s>` + truncation + padding for single texts (the fast path)."""
        import numpy as np

        keep = lens if max_len is None else np.minimum(lens, max(max_len - 2, 0))
        if max_len is not None and (keep < lens).any():
            starts = np.repeat(np.cumsum(lens) - lens, lens)
            pos = np.arange(flat.size) - starts
            flat = flat[pos < np.repeat(keep, lens)]
        width = int(keep.max(initial=0)) + 2 if lens.size else 0
        if isinstance(pad_to, int):
            width = max(width, pad_to)
        cols = np.arange(width)[None, :]
        ids = np.full((lens.size, width), self.pad_id, dtype=np.int64)
        ids[(cols >= 1) & (cols <= keep[:, None])] = flat
        ids[:, 0] = self.bos_id
        ids[np.arange(lens.size), keep + 1] = self.eos_id
        mask = (cols < (keep + 2)[:, None]).astype(np.int64)
        if pad_to is None:
            return [r[: k + 2].tolist() for r, k in zip(ids, keep)], [[1] * (k + 2) for k in keep.tolist()]
        return ids, mask

    def _finish(self, ids, mask, rows, first, second, langs, return_tensors, single):
        data = {"input_ids": ids, "attention_mask": mask}
        lang_values = self._langs_tensor_values(langs)
        if lang_values is not None:
            data["langs"] = _fill_like(ids, lang_values)
        offsets = word_ids = None
        if rows is not None:
            offsets, word_ids = _offsets_and_words(rows, first, second, ids)
        if return_tensors == "pt":
            data = {k: _to_tensor(v) for k, v in data.items()}
            offsets = None if offsets is None else _to_tensor(offsets, pair=True)
        else:
            data = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in data.items()}
            if single:
                data = {k: v[0] for k, v in data.items()}
                offsets = None if offsets is None else offsets[0]
                word_ids = None if word_ids is None else word_ids[0]
        return Batch(data, offsets, word_ids)


def _as_text_list(texts, what: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{what} must be str or a list of str, got {type(texts).__name__}")
    return [check_text(t, f"{what}[{i}]") for i, t in enumerate(texts)]


def _resolve_padding(padding, max_len: int):
    if padding is True or padding == "longest":
        return "longest"
    if padding == "max_length":
        return max_len
    if padding is False or padding is None or padding == "do_not_pad":
        return None
    raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")


def _pad_rows(rows: list[list[int]], pad_id: int, pad_to):
    if pad_to is None:
        return rows, [[1] * len(r) for r in rows]
    width = max((len(r) for r in rows), default=0)
    if pad_to != "longest":
        width = max(width, pad_to)
    ids = [r + [pad_id] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return ids, mask


def _fill_like(ids, values: list[int]):
    return [[v] * len(row) for row, v in zip(ids, values)]


def _to_tensor(rows, pair: bool = False) -> torch.Tensor:
    if isinstance(rows, torch.Tensor):
        return rows
    if hasattr(rows, "dtype"):
        return torch.from_numpy(rows)
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise ValueError("sequences have different lengths: use padding=True or return_tensors=None")
    if not rows:
        return torch.zeros((0, 0, 2) if pair else (0, 0), dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)


def _offsets_and_words(rows, first, second, ids):
    width = len(ids[0]) if len(ids) and not isinstance(ids, list) else None
    all_offsets, all_words = [], []
    for k, (row_ids, spans, segment) in enumerate(rows):
        texts = (first[k], second[k] if second is not None else "")
        words = [None] * len(row_ids)
        for seg in (0, 1):
            where = [j for j, s in enumerate(segment) if s == seg]
            for j, w in zip(where, word_ids_for(texts[seg], [spans[j] for j in where])):
                words[j] = w
        offsets = [s if s is not None else (0, 0) for s in spans]
        n_pad = (width if width is not None else len(ids[k])) - len(row_ids)
        all_offsets.append(offsets + [(0, 0)] * n_pad)
        all_words.append(words + [None] * n_pad)
    return all_offsets, all_words
