"""Language codes at the public entry points (fill_mask, embed, generate, translate, classify, tag, answer):
one rule for all of them.

An XLM model with language embeddings needs a code it knows; a code it does not know is an error that names
the code and the model's codes (never a silent id 0). An XLM tokenizer without language embeddings (the
17- and 100-language models) still picks its Moses rules by the code and refuses codes it lacks. An XLM-R
model has neither language embeddings nor per-language tokenization, so a code changes nothing: it is
accepted with one warning per code and process, so that `--lang klingon` does not pass without a word.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

_WARNED: set[str] = set()


def _known(model, tok) -> list[str]:
    """The codes the model (or, without names there, its tokenizer) knows."""
    if model.config.langs:
        return list(model.config.langs)
    return sorted(getattr(tok, "lang2id", None) or {})


def tokenizer_options(model, tok, lang: str | None, *, what: str = "lang") -> dict:
    """The tokenizer's `lang=` for a call on `model`: {} or {"lang": code}, after the checks above."""
    uses_codes = model.config.has_lang_emb or bool(getattr(tok, "lang2id", None))
    if lang is None:
        if model.config.has_lang_emb:
            raise ValueError(f"this model needs a language: pass {what}= one of {', '.join(_known(model, tok))}")
        return {}
    if not uses_codes:
        if lang not in _WARNED:
            _WARNED.add(lang)
            logger.warning("%s %r has no effect: this model has no language embeddings and its tokenizer no "
                           "per-language rules", what, lang)
        return {}
    known = _known(model, tok)
    if known and lang not in known:
        raise ValueError(f"unknown language {lang!r}: this model knows {', '.join(known)}")
    return {"lang": lang}


def check_code(model, code: str | None, what: str) -> None:
    """A code given where only the model's language table matters (a translator's target language)."""
    if code is None or model.config.has_lang_emb:
        return
    if code not in _WARNED:
        _WARNED.add(code)
        logger.warning("%s %r has no effect: this model has no language embeddings", what, code)
