"""xlmlib.translate(): text in, text out, through a Translator and its tokenizer (xlm-mt.md section 6).

Sources are the tokenizer's pieces without `<s>`, framed `</s> ... </s>`; the output ids are cut at the
second `</s>` and the pieces joined by the tokenizer's decode. Lines are read in windows, sorted by length
inside a window and batched, and the translations come back in input order, window after window, so a
long file streams. Note: the default length limit is int(1.5 * longest source of the batch + 10), as in
the original (whose translate.py batches 32 lines in input order), so only rows that reach that limit
can depend on how lines were batched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ..api import InputTooLong
from ..family import family_of
from ..languages import check_code
from ..tokenize.truncation import warn_truncated

WINDOW_BATCHES = 16  # batches per sorting window: long enough to group similar lengths, short enough to stream


def _lang_id(model, code, what):
    cfg = model.config
    if not cfg.has_lang_emb:
        return None
    if code is None or code not in cfg.lang2id:
        known = ", ".join(cfg.langs) or f"ids 0..{cfg.n_langs - 1} (no codes stored)"
        raise ValueError(f"{what} {code!r} is not a language of this translator; it knows: {known}")
    return cfg.lang2id[code]


def frame(tok, texts: list[str], model, src_lang) -> list[list[int]]:
    """`</s> pieces </s>` for every text: the tokenizer's own framing (`<s> ... </s>`) replaced by the
    family's (family.framing)."""
    kwargs = {"lang": src_lang} if src_lang is not None else {}
    rows = tok(texts, padding=False, truncation=False, return_tensors=None, **kwargs)["input_ids"]
    framing = family_of(model.config).framing(model.config)
    return [framing.frame(tok.framing.strip(row)) for row in rows]


def _pad(rows: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def cut(ids: list[int], eos: int) -> list[int]:
    """The words between the leading </s> and the next one."""
    body = ids[1:]
    return body[:body.index(eos)] if eos in body else body


def _translate_rows(model, tok, rows, src_id, tgt_id, options) -> list[str]:
    """Framed source rows -> their translations (text)."""
    cfg = model.config
    device = next(model.parameters()).device
    src = _pad(rows, cfg.pad_index).to(device)
    out = model.generate(src, langs=src_id, tgt_lang=tgt_id, **options).tolist()
    return [tok.decode(cut(row, cfg.eos_index)) for row in out]


def _fit(rows: list[list[int]], limit: int, eos: int) -> tuple[list[list[int]], list[int]]:
    """Rows cut to `limit` tokens, still ending in </s>, and the indices of the rows that were longer."""
    long = [i for i, r in enumerate(rows) if len(r) > limit]
    for i in long:
        rows[i] = rows[i][: limit - 1] + [eos]
    return rows, long


def iter_translate(model, tok, lines: Iterable[str], *, src_lang=None, tgt_lang=None, num_beams: int = 1,
                   batch_size: int = 32, max_new_tokens: int | None = None, length_penalty: float = 1.0,
                   early_stopping: bool = False, sort_by_length: bool = True, truncation: bool = True) -> Iterator[str]:
    """Translations of `lines`, yielded in input order as each window of batch_size * 16 lines is done.
    A line longer than the model takes is cut to its limit (one TruncationWarning for the call, saying how
    many); truncation=False raises InputTooLong for it instead, after yielding every line before it."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src_id, tgt_id = _lang_id(model, src_lang, "src_lang"), _lang_id(model, tgt_lang, "tgt_lang")
    check_code(model, src_lang, "src_lang")
    check_code(model, tgt_lang, "tgt_lang")
    options = {"num_beams": num_beams, "max_new_tokens": max_new_tokens, "length_penalty": length_penalty,
               "early_stopping": early_stopping}
    limit, n_done, n_cut = model.config.max_tokens, 0, 0
    for window in _windows(lines, batch_size * WINDOW_BATCHES):
        rows, long = _fit(frame(tok, window, model, src_lang), limit, model.config.eos_index)
        if long and not truncation:
            bad = long[0]
            yield from _window(model, tok, rows[:bad], src_id, tgt_id, options, batch_size, sort_by_length)
            raise InputTooLong(n_done + bad, len(frame(tok, [window[bad]], model, src_lang)[0]), limit)
        yield from _window(model, tok, rows, src_id, tgt_id, options, batch_size, sort_by_length)
        n_done, n_cut = n_done + len(rows), n_cut + len(long)
    warn_truncated(n_cut, n_done, limit, "translate")


def _windows(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    window: list[str] = []
    for line in lines:
        window.append(line.rstrip("\n"))
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _window(model, tok, rows, src_id, tgt_id, options, batch_size, sort_by_length):
    order = sorted(range(len(rows)), key=lambda i: len(rows[i])) if sort_by_length else list(range(len(rows)))
    done: list[str | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        for i, text in zip(index, _translate_rows(model, tok, [rows[i] for i in index], src_id, tgt_id, options)):
            done[i] = text
    yield from done


def translate(model, tok, texts, src_lang: str | None = None, tgt_lang: str | None = None, num_beams: int = 1,
              **options) -> list[str]:
    """Translate one text or a list; options: batch_size, max_new_tokens, length_penalty, early_stopping,
    sort_by_length, truncation. src_lang / tgt_lang are language codes (needed when the model has language embeddings)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    return list(iter_translate(model, tok, texts, src_lang=src_lang, tgt_lang=tgt_lang, num_beams=num_beams,
                               **options))


def load_translator(src, *, device=None):
    """(Translator, tokenizer) from a Translator folder or MT .pth (BPE codes*/vocab* beside it)."""
    from pathlib import Path

    from .. import hub
    from ..tokenize import Tokenizer, XLMTokenizer
    from .model import Translator

    model = Translator.from_pretrained(src, device=device)
    files = model.tokenizer_files
    codes = [p for n, p in files.items() if n.startswith("codes")]
    vocab = [p for n, p in files.items() if n.startswith("vocab") and not n.endswith(".json")]
    if codes and vocab:
        cfg = model.config
        tok = XLMTokenizer.from_released(codes[0], vocab[0], lang2id=cfg.lang2id or None,
                                         use_lang_emb=cfg.has_lang_emb)
    else:
        path = hub.resolve(src)
        tok = Tokenizer.from_pretrained(path if path.is_dir() else Path(path).parent)
    return model, tok
