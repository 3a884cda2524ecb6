"""Raw text split into the words a tagger labels, with character offsets (xlmlib.tag uses it).

Rules, in this order, for each character:
- whitespace (str.isspace, and U+200B ZERO WIDTH SPACE, which Thai and Khmer text may use to mark word breaks)
  separates;
- punctuation, Unicode category P* (. , ! ? « » 「 」 ... and also - ' ’), is a word of its own, one per character
  (as BERT's basic tokenizer splits punctuation): "Paris." -> Paris / . and "l'homme" -> l / ' / homme;
- each CJK ideograph (Han), Hiragana or Katakana character, and each Thai character, is a word of its own: these
  scripts do not put spaces between words, and one character per word needs no segmenter (a word segmenter such as
  jieba or KyTea is the alternative; give tag() its words for that).
  Combining marks (category M*) stay with the character before them (Thai vowel and tone marks).
  Hangul is not split: Korean puts spaces between its words. Other unspaced scripts (Lao, Khmer, Myanmar,
  Tibetan) are not split either;
- everything else (letters, digits, symbols such as $ € +) joins the current word.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

# Code point ranges whose characters are one word each (Unicode blocks).
_OWN_WORD = (
    (0x0E00, 0x0E7F),  # Thai
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Halfwidth Katakana
    (0x20000, 0x2FA1F),  # CJK Extensions B-F and Compatibility Ideographs Supplement
    (0x30000, 0x323AF),  # CJK Extensions G-H
)


class Word(NamedTuple):
    """One word and where it lies in the text: text[start:end] == word.text."""

    text: str
    start: int
    end: int


def _own_word(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _OWN_WORD)


def _separates(ch: str) -> bool:
    return ch.isspace() or ch == "\u200b"


def split_words(text: str) -> list[Word]:
    """The words of `text` by the rules above: "Tom wohnt in Paris." -> Tom / wohnt / in / Paris / ."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    spans: list[list[int]] = []
    open_word = False  # whether the last span may still grow by ordinary characters
    for i, ch in enumerate(text):
        if _separates(ch):
            open_word = False
            continue
        category = unicodedata.category(ch)
        if category[0] == "M" and spans and spans[-1][1] == i:
            spans[-1][1] = i + 1  # a combining mark belongs to the character before it, whatever that is
        elif category[0] == "P" or _own_word(ch):
            spans.append([i, i + 1])
            open_word = False
        elif open_word:
            spans[-1][1] = i + 1
        else:
            spans.append([i, i + 1])
            open_word = True
    return [Word(text[s:e], s, e) for s, e in spans]


def join_words(words) -> tuple[str, list[Word]]:
    """Given words joined by single spaces, and each word with its offsets into that text."""
    out, start = [], 0
    for k, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"word {k}: expected a str, got {type(word).__name__}")
        out.append(Word(word, start, start + len(word)))
        start += len(word) + 1
    return " ".join(words), out


__all__ = ["Word", "join_words", "split_words"]
