"""Robustness on arbitrary Unicode (hypothesis, bounded example counts to stay fast)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

LANGS = ["en", "fr", "de", "ru", "el", "tr", "ar", "vi"]  # XNLI-15 languages without optional extras


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=60), st.text(max_size=20))
def test_xlmr_never_fails_and_ids_in_range(xlmr, text, pair):
    batch = xlmr([text], [pair], return_offsets=True, return_tensors=None, padding=False)
    ids = batch["input_ids"][0]
    assert all(0 <= i < xlmr.vocab_size for i in ids)
    assert all(0 <= s <= e <= max(len(text), len(pair)) for s, e in batch.offsets[0])
    assert xlmr(text, return_tensors=None)["input_ids"] == xlmr.encode(text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=60), st.sampled_from(LANGS))
def test_xlm_never_fails_and_ids_in_range(xlm_release, text, lang):
    tok = xlm_release("xnli_15")
    batch = tok(text, lang=lang, return_offsets=True, return_tensors=None)
    assert all(0 <= i < tok.vocab_size for i in batch["input_ids"])
    assert all(0 <= s <= e <= len(text) for s, e in batch.offsets)
    assert batch["input_ids"][0] == 0 and batch["input_ids"][-1] == 1


LETTERS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éàüßñçøåÉ"
           "абвгдежзийклмнопрстуфхцчшщыэюяАБВГДαβγδεζηθικλμνξοπρστυφχψω中文日本語한국어ไทยعربي")
WORD = st.text(alphabet=LETTERS, min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(WORD, min_size=1, max_size=8))
def test_xlmr_decode_round_trips_plain_text(xlmr, words):
    text = " ".join(words)
    # "Plain" text: what SentencePiece's NFKC normalisation leaves unchanged and fully in vocabulary.
    assume(xlmr.sp.normalize(text) == "\u2581" + text.replace(" ", "\u2581"))
    ids = xlmr.encode(text)
    assume(xlmr.unk_id not in ids)
    assert xlmr.decode(ids, skip_special_tokens=True) == text
