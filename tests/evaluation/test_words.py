"""Raw text split into words for tagging (xlmlib.evaluation.words): whitespace, punctuation (Unicode P*) on its
own, one word per CJK / Thai character with its combining marks; offsets always point at the word. Expected
splits are hand-worked from the rules in the module docstring."""

import itertools

import pytest

from xlmlib.evaluation.words import Word, join_words, split_words


def _texts(text):
    return [w.text for w in split_words(text)]


@pytest.mark.parametrize("text, words", [
    ("Tom wohnt in Paris.", ["Tom", "wohnt", "in", "Paris", "."]),
    ("«Non», dit-il... ", ["«", "Non", "»", ",", "dit", "-", "il", ".", ".", "."]),
    ("l'homme a payé 5$ (environ).", ["l", "'", "homme", "a", "payé", "5$", "(", "environ", ")", "."]),
    ("東京は日本の首都です。", ["東", "京", "は", "日", "本", "の", "首", "都", "で", "す", "。"]),
    ("カタカナとひらがな", ["カ", "タ", "カ", "ナ", "と", "ひ", "ら", "が", "な"]),
    ("서울은 한국의 수도이다.", ["서울은", "한국의", "수도이다", "."]),  # Hangul keeps its spaced words
    ("ที่นี่", ["ที่", "นี่"]),  # two consonants, each with its vowel and tone mark (combining, category Mn)
    ("Hello世界!", ["Hello", "世", "界", "!"]),
    ("a\u200bb\tc\n", ["a", "b", "c"]),  # zero width space separates
    ("", []),
    ("  ", []),
])
def test_split_words(text, words):
    assert _texts(text) == words


def test_offsets_point_at_the_words(assets):
    """On real sentences of several scripts: text[start:end] is the word, words hold no space, and together
    the words are the text without its whitespace."""
    tatoeba = assets / "tatoeba-laser-v1"
    for lang in ("deu", "fra", "rus", "ara", "cmn", "jpn", "tha", "kor", "hin"):
        for text in (tatoeba / f"tatoeba.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()[:50]:
            words = split_words(text)
            assert all(text[w.start:w.end] == w.text and w.text and not w.text.isspace() for w in words)
            assert "".join(w.text for w in words) == "".join(ch for ch in text if not ch.isspace() and ch != "\u200b")
            assert all(a.end <= b.start for a, b in itertools.pairwise(words))


def test_join_words_gives_offsets_into_the_joined_text():
    text, words = join_words(["New", "York", "!"])
    assert text == "New York !"
    assert words == [Word("New", 0, 3), Word("York", 4, 8), Word("!", 9, 10)]
    with pytest.raises(TypeError, match="word 1: expected a str"):
        join_words(["a", 3])
    with pytest.raises(TypeError, match="expected a str"):
        split_words(["a"])
