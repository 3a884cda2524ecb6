"""Fixtures for the tokenizer tests: our tokenizers on the shared real vocabularies, transformers'
reference tokenizers built from the same files, and Tatoeba text (see shared/assets/PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlmlib.tokenize import XLMRTokenizer, XLMTokenizer
from xlmlib.tokenize.learn import convert_fastbpe

# Tatoeba file code -> XLM language code, for the languages the released XLM vocabularies cover.
TATOEBA_TO_XLM = {"ara": "ar", "bul": "bg", "deu": "de", "ell": "el", "eng": "en", "spa": "es", "fra": "fr",
                  "hin": "hi", "rus": "ru", "swh": "sw", "tha": "th", "tur": "tr", "urd": "ur", "vie": "vi",
                  "cmn": "zh"}


@pytest.fixture(scope="session")
def tatoeba_to_xlm() -> dict[str, str]:
    return dict(TATOEBA_TO_XLM)


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="session")
def tatoeba(assets):
    """code -> lines of tatoeba.<code>-eng.<code>; "eng:<code>" -> the English side of that pair."""
    folder = assets / "tatoeba-laser-v1"

    def load(code: str) -> list[str]:
        if code.startswith("eng:"):
            other = code[4:]
            return read_lines(folder / f"tatoeba.{other}-eng.eng")
        return read_lines(folder / f"tatoeba.{code}-eng.{code}")

    return load


@pytest.fixture(scope="session")
def all_tatoeba(assets) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted((assets / "tatoeba-laser-v1").glob("tatoeba.*")):
        out += [(path.name, i, line) for i, line in enumerate(read_lines(path))]
    return out


@pytest.fixture(scope="session")
def spm_model(assets) -> Path:
    return assets / "xlmr-spm-rebuilt" / "sentencepiece.bpe.model"


@pytest.fixture(scope="session")
def xlmr(spm_model) -> XLMRTokenizer:
    return XLMRTokenizer(spm_model)


@pytest.fixture(scope="session")
def sp(spm_model):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(spm_model))


@pytest.fixture(scope="session")
def hf_xlmr(assets):
    """transformers' XLMRobertaTokenizer (Rust backend in transformers 5) from the asset tokenizer.json.

    That file comes from multilingual-e5-small, whose <mask> is lstrip=False; FacebookAI/xlm-roberta-base
    declares <mask> with lstrip=True (formats.md section 3), so the token is re-declared that way."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import AddedToken

    tok = transformers.XLMRobertaTokenizer(tokenizer_file=str(assets / "xlmr-tokenizer-json" / "tokenizer.json"))
    tok.add_special_tokens({"mask_token": AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False,
                                                     special=True)})
    return tok


@pytest.fixture(scope="session")
def xlm_release(assets):
    """release name -> our XLMTokenizer read straight from the released codes_*/vocab_* files."""
    cache = {}

    def load(name: str) -> XLMTokenizer:
        if name not in cache:
            cache[name] = XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release=name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def hf_xlm(assets, tmp_path_factory, xlm_release):
    """release name -> transformers' XLMTokenizer on the release converted by our converter."""
    transformers = pytest.importorskip("transformers")
    cache = {}

    def load(name: str):
        if name not in cache:
            ours = xlm_release(name)
            out = tmp_path_factory.mktemp(f"hf-{name}")
            folder = assets / "xlm-bpe-fastbpe"
            max_vocab = 95000 if name == "xnli_15" else None
            convert_fastbpe(folder / f"codes_{name}", folder / f"vocab_{name}", out, max_vocab=max_vocab,
                            lang2id=ours.lang2id, do_lowercase_and_remove_accent=ours.do_lowercase_and_remove_accent)
            cache[name] = transformers.XLMTokenizer(
                str(out / "vocab.json"), str(out / "merges.txt"), lang2id=ours.lang2id,
                id2lang={v: k for k, v in ours.lang2id.items()},
                do_lowercase_and_remove_accent=ours.do_lowercase_and_remove_accent)
        return cache[name]

    return load
