"""Fixtures for the QA tests: our tokenizers on the real vocabularies (shared assets), transformers' fast
XLM-R tokenizer from the asset tokenizer.json (a test-only reference), and long multilingual contexts made of
Tatoeba sentences (see shared/assets/PROVENANCE.md)."""

from __future__ import annotations

import pytest

import xlmlib
from xlmlib.tokenize import XLMTokenizer

# Tatoeba file code -> the context language; several scripts, Chinese without spaces.
CONTEXT_LANGS = {"deu": "de", "cmn": "zh", "ara": "ar", "hin": "hi", "vie": "vi", "spa": "es", "eng": "en"}


@pytest.fixture(scope="session")
def xlmr_tok(assets):
    return xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt")


@pytest.fixture(scope="session")
def hf_xlmr_fast(assets):
    """transformers' XLMRobertaTokenizer (the Rust one in transformers 5) on the same vocabulary."""
    transformers = pytest.importorskip("transformers")
    return transformers.XLMRobertaTokenizer(tokenizer_file=str(assets / "xlmr-tokenizer-json" / "tokenizer.json"))


@pytest.fixture(scope="session")
def xlm_tok(assets):
    """The released XNLI-15 vocabulary: lowercased, 15 languages with language embeddings."""
    return XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="xnli_15")


@pytest.fixture(scope="session")
def xlm_enfr(assets):
    """The released en-fr vocabulary: cased, so token surfaces are the context's characters."""
    return XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="enfr")


@pytest.fixture(scope="session")
def contexts(assets) -> dict[str, str]:
    """Language code -> one long context: 60 Tatoeba sentences joined by spaces (several windows)."""
    out = {}
    for code, lang in CONTEXT_LANGS.items():
        name = f"tatoeba.{code}-eng.{code}" if code != "eng" else "tatoeba.deu-eng.eng"
        lines = (assets / "tatoeba-laser-v1" / name).read_text(encoding="utf-8").split("\n")[:60]
        out[lang] = " ".join(line.strip() for line in lines if line.strip())
    return out
