"""What both tokenizers share: batching, special tokens, truncation, padding, offsets and word_ids.

A subclass supplies `_encode_texts` (text -> ids, and character spans when asked) and the layout of
special tokens; everything a `model(**batch)` call needs is assembled here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ..family import Framing
from .truncation import TruncationWarning, resolve_truncation, truncate_pair, warn_truncated
from .words import word_ids_for, word_ids_from_tables

__all__ = ["BaseTokenizer", "Batch", "TruncationWarning", "warn_truncated"]

CONFIG_NAME = "tokenizer_config.json"


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


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing tokenizer file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt tokenizer file {path}: {err}") from None


def configured_max_length(config: dict, default: int = 512) -> int:
    """model_max_length of a tokenizer_config.json; transformers writes a huge sentinel (1e30) when no
    limit is known, which means the default here."""
    value = config.get("model_max_length")
    return value if isinstance(value, int) and value <= 4096 else default


class BaseTokenizer:
    """Turns texts into model inputs. Subclasses set the special ids, their family's `framing`
    (family.py: `<s> A </s>`; pairs `<s> A </s> B </s>` for XLM, `<s> A </s></s> B </s>` for XLM-R),
    the special tokens a text may spell out, and implement `_encode_text`, `_tokens`, `id_to_token`,
    `token_to_id`, `is_special_id` and `_build_word_tables`."""

    model_max_length = 512
    bos_id = eos_id = pad_id = unk_id = mask_id = 0
    framing: Framing = Framing(0, 0)
    # Special tokens written in a text (one regex alternation, captured), split out before encoding as
    # transformers does with added tokens. Every special of both vocabularies is spelled <...>.
    special_split: re.Pattern | None = None
    strip_before_special = False  # XLM-R's <mask> absorbs the whitespace before it (its lstrip=True)
    space_marker = ""  # what reads as a space in joined pieces: "▁" (SentencePiece) or "</w>" (BPE)
    _word_tables = None

    # -- what a subclass provides -------------------------------------------------------------
    def _encode_text(self, text: str, lang: str | None, with_offsets: bool):
        """(ids, spans relative to text, or None) of a text that holds no special token."""
        raise NotImplementedError

    def is_special_id(self, i: int) -> bool:
        raise NotImplementedError

    def _build_word_tables(self):
        """(special, starts, ends) boolean tables over the vocabulary for word_ids_from_tables; one of
        starts / ends is None."""
        raise NotImplementedError

    def id_to_token(self, i: int) -> str:
        raise NotImplementedError

    def token_to_id(self, token: str) -> int:
        raise NotImplementedError

    # -- shared steps -------------------------------------------------------------------------
    def _segments(self, text: str) -> list[tuple[str, bool]]:
        """(part, is_special) in text order; one part when the text spells no special token."""
        if self.special_split is None or "<" not in text or not self.special_split.search(text):
            return [(text, False)]
        return [(part, k % 2 == 1) for k, part in enumerate(self.special_split.split(text))]

    def _encode_one(self, text: str, lang: str | None = None, with_offsets: bool = False):
        """(ids, spans or None) for one text, without framing; special tokens it spells become their ids."""
        segments = self._segments(check_text(text))
        if len(segments) == 1:
            return self._encode_text(text, lang, with_offsets)
        ids, spans, base = [], [] if with_offsets else None, 0
        for k, (part, special) in enumerate(segments):
            if special:
                ids.append(self.token_to_id(part))
                if with_offsets:
                    spans.append((base, base + len(part)))
            else:
                before_special = k + 1 < len(segments)
                part_text = part.rstrip() if self.strip_before_special and before_special else part
                if part_text:
                    part_ids, part_spans = self._encode_text(part_text, lang, with_offsets)
                    ids += part_ids
                    if with_offsets:
                        spans += [(s + base, e + base) for s, e in part_spans]
            base += len(part)
        return ids, spans

    def _encode_flat(self, texts: list[str], langs: list[str | None]):
        """All ids of a batch as one int64 array plus per-text lengths (no special tokens)."""
        import numpy as np

        ids = [self._encode_one(t, lg, False)[0] for t, lg in zip(texts, langs)]
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lens.sum()))
        return flat, lens

    def _tokens(self, text: str, lang: str | None) -> list[str]:
        """The pieces of one text, without special tokens (what `tokenize` returns)."""
        raise NotImplementedError

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

    # -- the public calls ---------------------------------------------------------------------
    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Pieces joined, the space marker read as a space, outer spaces stripped (fairseq's sentencepiece
        decode; transformers' XLM convert_tokens_to_string)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        tokens = [self.id_to_token(i) for i in ids if not (skip_special_tokens and self.is_special_id(int(i)))]
        return "".join(tokens).replace(self.space_marker, " ").strip()

    def word_ids_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Word index per token of already-encoded rows (B T), -1 on specials. For whole-word masking of
        binarized corpora, where the text is gone."""
        if self._word_tables is None:  # built once: the trainer calls this for every batch
            self._word_tables = self._build_word_tables()
        special, starts, ends = self._word_tables
        return word_ids_from_tables(ids, special, starts=starts, ends=ends)

    def tokenize(self, text: str, lang: str | None = None) -> list[str]:
        """The pieces of text. lang picks XLM's language rules (Moses, segmenters); XLM-R ignores it."""
        return self._tokens(check_text(text), lang)

    def encode(self, text: str, text_pair: str | None = None, lang: str | None = None,
               add_special_tokens: bool = True) -> list[int]:
        """Ids of text (and text_pair); add_special_tokens=False leaves out the framing (single texts)."""
        ids = self(text, text_pair, lang=lang, return_tensors=None, truncation=False, padding=False)["input_ids"]
        if add_special_tokens:
            return ids
        if text_pair is not None:
            raise ValueError("add_special_tokens=False is for single texts: a pair needs its separators")
        return self.framing.strip(ids)

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
            rows, n_cut = None, int((lens + self.framing.n_special() > max_len).sum()) if strategy else 0
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
            excess = len(pa) + len(pb or ()) + self.framing.n_special(pb is not None) - max_len
            if strategy is not None:
                pa, pb = truncate_pair(pa, pb, excess, strategy)
                n_cut += excess > 0
            rows.append(self._with_specials(pa, pb))
        return rows, n_cut

    def _with_specials(self, pa, pb):
        """(ids, spans, segment) for one example; spans/segment are None on special tokens."""
        frame, none = self.framing.frame, (lambda _: None)
        ids = frame([i for i, _ in pa], None if pb is None else [i for i, _ in pb])
        spans = frame([s for _, s in pa], None if pb is None else [s for _, s in pb], none)
        segment = frame([0] * len(pa), None if pb is None else [1] * len(pb), none)
        return ids, spans, segment

    def _assemble_flat(self, flat, lens, max_len, pad_to):
        """Vectorised framing (`open ids close`) + truncation + padding for single texts (the fast path)."""
        import numpy as np

        keep = lens if max_len is None else np.minimum(lens, max(max_len - self.framing.n_special(), 0))
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
        ids[:, 0] = self.framing.open
        ids[np.arange(lens.size), keep + 1] = self.framing.close
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
