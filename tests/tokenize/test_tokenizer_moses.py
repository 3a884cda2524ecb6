"""The fast Moses path against sacremoses (the reference transformers' XLMTokenizer calls) and the
unicode-punctuation / non-printing helpers against transformers' own functions."""

from __future__ import annotations

import pytest
import sacremoses
from hypothesis import given, settings
from hypothesis import strategies as st

from xlmlib.tokenize import moses

LANGS = ["en", "fr", "de", "es", "it", "ro", "ru", "el", "cs", "ar", "hi", "tr", "vi", "fi", "ko", "ja", "zh"]
# Characters that the Moses rules treat specially, to make fuzzed text hit them often.
TRICKY = list(" \t\u00a0.,;:!?'\"`()[]{}<>-–—/\\@#$%&*+=|~^_…«»„“”‘’´¸ºª°%0123456789aAzZéÉßİıΣσς中文") + \
    ["Mr.", "Dr.", "No.", "U.S.", "e.g.", "...", "--", "''", "``", "n't", "'s", "DOTMULTI", "cannot", "'tis"]


def reference(text: str, lang: str) -> list[str]:
    text = sacremoses.MosesPunctNormalizer(lang=lang).normalize(text)
    return sacremoses.MosesTokenizer(lang=lang).tokenize(text, return_str=False, escape=False)


def ours(text: str, lang: str) -> list[str]:
    return moses.moses_tokenizer(lang).tokenize(moses.punct_normalizer(lang).normalize(text))


@pytest.fixture(scope="module")
def references():
    return {lang: (sacremoses.MosesPunctNormalizer(lang=lang), sacremoses.MosesTokenizer(lang=lang)) for lang in LANGS}


def test_same_tokens_as_sacremoses_on_tatoeba(all_tatoeba, references):
    # Every 5th line of the whole set (all 112 languages), the Moses language rotating over LANGS:
    # sacremoses costs ~60 us a line, so all lines in all languages would take minutes.
    lines = [line for _, _, line in all_tatoeba][::5]
    compared, mismatches = 0, []
    for k, lang in enumerate(LANGS):
        norm, tok = references[lang]
        for line in lines[k::len(LANGS)]:
            want = tok.tokenize(norm.normalize(line), return_str=False, escape=False)
            compared += 1
            if ours(line, lang) != want:
                mismatches.append((lang, line))
    assert compared == len(lines) > 35_000
    assert mismatches == []


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=3)), max_size=14), st.sampled_from(LANGS))
def test_same_tokens_as_sacremoses_fuzzed(parts, lang):
    text = "".join(parts)
    text = moses.remove_non_printing(moses.replace_unicode_punct(text))
    assert ours(text, lang) == reference(text, lang)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from([c for c in TRICKY if len(c) == 1] + ["，", "。", "．", "、", "？", "！", "（", "）", "１", "９", "％",
                                                 "\u200b", "\x07", "\ufeff", "\u2028", "\ue000"]), max_size=30))
def test_helpers_match_transformers(text):
    xlm = pytest.importorskip("transformers.models.xlm.tokenization_xlm")
    assert moses.replace_unicode_punct(text) == xlm.replace_unicode_punct(text)
    assert moses.remove_non_printing(text) == xlm.remove_non_printing_char(text)
    assert moses.romanian_preprocessing(text + "ŞşŢţȘșȚțĂăÂâÎî") == xlm.romanian_preprocessing(text + "ŞşŢţȘșȚțĂăÂâÎî")
    words = text.split(" ")
    assert [moses.lowercase_and_remove_accent(w) for w in words] == xlm.lowercase_and_remove_accent(words)


def test_rule_prefilters():
    # A rule is skipped only when a character every match needs is absent.
    assert moses._required_chars(r"(\d) %") == frozenset("%")
    assert moses._required_chars(r"\) ([.!:?;,])") == frozenset(")")
    assert moses._required_chars(r"[\000-\037]") == frozenset(chr(c) for c in range(32))
    assert moses._required_chars(r"([^a])b?") is None
