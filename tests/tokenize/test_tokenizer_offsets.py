"""Offsets and word_ids for both tokenizers: spans in the ORIGINAL text, ordered, inside it, and the
text under each span normalises to the token's surface; plus the NER label helper."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlmlib.tokenize import align_labels, moses
from xlmlib.tokenize.align import project
from xlmlib.tokenize.xlm import END


def assert_ordered_inside(text, spans):
    assert all(0 <= s <= e <= len(text) for s, e in spans)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(spans))


def xlmr_surface_ok(xlmr, text, ids, spans):
    """SentencePiece-normalised text under the span equals the piece ("▁" ignored)."""
    return [(text[s:e], xlmr.id_to_token(i)) for i, (s, e) in zip(ids, spans)
            if i != xlmr.unk_id and xlmr.sp.normalize(text[s:e]).replace("▁", "") != xlmr.id_to_token(i).replace("▁", "")]


def xlm_surface_ok(tok, text, spans, lang):
    """The text under the span, normalised character by character (or as a whole, for rewrites that
    merge characters such as "''" -> '"'), contains the token's surface. Contains, not equals: one
    character can become several tokens (NFD "ো" -> "ে" + "া", "…" -> "...")."""
    lower = tok.do_lowercase_and_remove_accent
    bad = []
    for piece, (s, e) in zip(tok.tokenize(text, lang=lang), spans):
        surface = piece.removesuffix(END)
        whole = moses.moses_pipeline(text[s:e], lang)
        whole = moses.lowercase_and_remove_accent(whole) if lower else whole
        # Python lowercases a word-final Σ to ς (Final_Sigma), which no single character shows.
        surface = surface.replace("ς", "σ")
        seen = (project(text[s:e], lang, lower) + " " + whole.replace(" ", "")).replace("ς", "σ")
        if surface not in seen:
            bad.append((text[s:e], surface))
    return bad


def test_xlmr_properties_on_tatoeba(xlmr, all_tatoeba):
    lines = [line for _, _, line in all_tatoeba][::10]
    batch = xlmr(lines, return_offsets=True, return_tensors=None, padding=False)
    bad = []
    for text, ids, spans, words in zip(lines, batch["input_ids"], batch.offsets, batch.word_ids):
        assert ids[0] == 0 and spans[0] == (0, 0) and words[0] is None and words[-1] is None
        assert_ordered_inside(text, spans[1:-1])
        bad += xlmr_surface_ok(xlmr, text, ids[1:-1], spans[1:-1])
        inner = words[1:-1]
        # Non-decreasing and in range; a word of only characters SentencePiece drops (e.g. U+200B)
        # has no token, so not every word index need appear.
        assert inner == sorted(inner) and set(inner) <= set(range(len(text.split())))
    assert len(lines) > 17000 and bad == []


def test_xlmr_lone_metaspace_and_full_width(xlmr):
    batch = xlmr("a 中文 b", return_offsets=True, return_tensors=None)
    assert xlmr.tokenize("a 中文 b") == ["▁a", "▁", "中文", "▁b"]
    # The lone "▁" stands for the space before 中文 (HF#17454 reports it one character off).
    assert batch.offsets == [(0, 0), (0, 1), (1, 2), (2, 4), (5, 6), (0, 0)]
    assert batch.word_ids == [None, 0, 1, 1, 2, None]
    text = "ｈｅｌｌｏ？……"  # full-width forms (HF#9744)
    batch = xlmr(text, return_offsets=True, return_tensors=None)
    assert batch.offsets[1:-1] == [(0, 4), (4, 5), (5, 6), (6, 8)]
    assert batch.word_ids[1:-1] == [0, 0, 0, 0]
    start = xlmr("中文", return_offsets=True, return_tensors=None).offsets[1]
    assert start == (0, 0)  # the sentence-initial "▁" stands for no input character


@pytest.mark.parametrize("release,lang,code", [("xnli_15", "en", "eng:fra"), ("xnli_15", "ru", "rus"),
                                               ("xnli_15", "el", "ell"), ("enfr", "fr", "fra"), ("ende", "de", "deu")])
def test_xlm_properties_on_tatoeba(xlm_release, tatoeba, release, lang, code):
    tok = xlm_release(release)
    lines = tatoeba(code)[::2]
    batch = tok(lines, lang=lang, return_offsets=True, return_tensors=None, padding=False)
    bad = []
    for text, spans, words in zip(lines, batch.offsets, batch.word_ids):
        assert_ordered_inside(text, spans[1:-1])
        bad += xlm_surface_ok(tok, text, spans[1:-1], lang)
        assert words[1:-1] == sorted(words[1:-1])
    assert bad == []


def test_xlm_normalised_characters_map_back(xlm_release):
    tok = xlm_release("xnli_15")
    text = "Ça VA «très» bien… ＯＫ？ \"stop\"."
    batch = tok(text, lang="en", return_offsets=True, return_tensors=None)
    pieces = tok.tokenize(text, lang="en")
    spans = dict(zip(pieces, batch.offsets[1:-1]))
    assert text[slice(*spans["ca</w>"])] == "Ça" and text[slice(*spans["va</w>"])] == "VA"
    assert text[slice(*spans["...</w>"])] == "…"  # one input character became three
    # English Moses moves the period inside the quotes (`"stop".` -> `stop ."`): the period token,
    # now before the closing quote token, still covers the input period.
    assert pieces[-3:] == ["stop</w>", ".</w>", '"</w>']
    period, quote = batch.offsets[-3], batch.offsets[-2]
    assert text[period[1] - 1] == "." and text[slice(*quote)] == '"' and period[0] <= quote[0]


ALPHABET = "abcdeABCDEàéÎöÇßΣσΑβжЖ中文1 ,.!?-'"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_offset_properties_fuzzed(xlmr, xlm_release, text):
    batch = xlmr(text, return_offsets=True, return_tensors=None)
    assert_ordered_inside(text, batch.offsets[1:-1])
    assert xlmr_surface_ok(xlmr, text, batch["input_ids"][1:-1], batch.offsets[1:-1]) == []
    tok = xlm_release("xnli_15")
    batch = tok(text, lang="fr", return_offsets=True, return_tensors=None)
    assert_ordered_inside(text, batch.offsets[1:-1])
    assert xlm_surface_ok(tok, text, batch.offsets[1:-1], "fr") == []


def test_pair_offsets_refer_to_each_text(xlmr):
    batch = xlmr("Hello there", "General Kenobi", return_offsets=True, return_tensors=None)
    # pieces ▁Hello ▁there | ▁General ▁Ken obi; spans index each text on its own
    assert batch["input_ids"][3:5] == [2, 2]
    assert batch.offsets == [(0, 0), (0, 5), (6, 11), (0, 0), (0, 0), (0, 7), (8, 11), (11, 14), (0, 0)]
    assert batch.word_ids == [None, 0, 1, None, None, 0, 1, 1, None]


def test_offsets_as_tensors_stay_out_of_model_inputs(xlmr):
    batch = xlmr(["one two", "three"], return_offsets=True)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["offsets"].shape == (*batch["input_ids"].shape, 2) and batch["word_ids"] is batch.word_ids
    assert batch.offsets[1, -1].tolist() == [0, 0]  # padding


def test_align_labels():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    assert align_labels([7, 8, 9], word_ids) == [-100, 7, -100, 8, 9, -100, -100, -100]
    assert align_labels([7, 8, 9], word_ids, label_all_subtokens=True) == [-100, 7, 7, 8, 9, 9, 9, -100]
    batch = align_labels([[1, 2], [3]], [[None, 0, 1, None], [None, 0, None, None]])
    assert torch.equal(batch, torch.tensor([[-100, 1, 2, -100], [-100, 3, -100, -100]]))
    with pytest.raises(ValueError, match="word labels"):
        align_labels([1], [None, 0, 1])


def test_align_labels_with_real_tokenizers(xlmr, xlm_release):
    words = ["Angela", "Merkel", "visited", "Paris"]
    labels = [1, 2, 0, 3]
    for tok, kwargs in ((xlmr, {}), (xlm_release("enfr"), {"lang": "en"})):
        batch = tok([" ".join(words)], return_offsets=True, **kwargs)
        aligned = align_labels([labels], batch.word_ids)
        assert aligned.shape == batch["input_ids"].shape
        assert [v for v in aligned[0].tolist() if v != -100] == labels
