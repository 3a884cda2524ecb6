"""Word boundaries recovered from ids alone (binarized corpora keep no text), used by whole-word masking:
for XLM-R they give the same words as the tokenizer's own word_ids on real text; for XLM, Moses splits
punctuation off, so every word from ids lies inside one whitespace word of the text."""

import torch

import xlmlib


def _groups(word_ids):
    groups = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w >= 0:
            groups.setdefault(w, []).append(pos)
    return sorted(groups.values())


def _lines(assets, name, n=200):
    return (assets / "tatoeba-laser-v1" / name).read_text(encoding="utf-8").splitlines()[:n]


def test_xlmr_words_from_ids_equal_the_texts_words(assets):
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt")
    lines = _lines(assets, "tatoeba.deu-eng.deu") + _lines(assets, "tatoeba.rus-eng.rus")
    batch = tok(lines, return_offsets=True)
    from_ids = tok.word_ids_from_ids(batch["input_ids"])
    for row, line in enumerate(lines):
        assert _groups(from_ids[row].tolist()) == _groups(batch.word_ids[row]), line


def test_xlm_words_from_ids_refine_the_texts_words(assets):
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="xnli_15")
    lines = _lines(assets, "tatoeba.fra-eng.fra")
    batch = tok(lines, lang="fr", return_offsets=True)
    from_ids = tok.word_ids_from_ids(batch["input_ids"])
    for row, line in enumerate(lines):
        text_word = batch.word_ids[row]
        for group in _groups(from_ids[row].tolist()):
            assert len({text_word[p] for p in group}) == 1, line


def test_specials_are_their_own_boundaries(assets):
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt")
    ids = torch.tensor([tok.encode("Hello world") + tok.encode("again")])  # <s> .. </s><s> .. </s>
    words = tok.word_ids_from_ids(ids)[0].tolist()
    assert [w for w, i in zip(words, ids[0].tolist()) if i in (0, 1, 2, 3)] == [-1] * 4
    assert len({w for w in words if w >= 0}) == 3
