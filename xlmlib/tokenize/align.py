"""Character spans in the ORIGINAL text for XLM tokens, through normalisation and lowercasing.

No reference library offers this for XLM (user-needs.md item 1). The XLM pipeline rewrites text
(punctuation replacement, Moses normalisation, lowercasing, accent stripping) before it splits it, so
token characters cannot be found in the input by position. Instead every input character is
projected on its own through the same steps, which gives a string whose characters each remember the
input character they came from; the tokens' characters are then matched against that projection in
order (difflib, so context-dependent rewrites such as Moses moving a quote after a comma only leave a
few characters unmatched). A token covers the input characters its matched characters came from; one
with no matched character gets an empty span where it sits.
"""

from __future__ import annotations

import difflib
from functools import lru_cache

from . import moses


@lru_cache(maxsize=65536)
def project_char(char: str, lang: str, lowercase: bool) -> str:
    """What one input character becomes in the XLM pipeline on its own (whitespace dropped)."""
    text = moses.moses_pipeline(char, lang)
    if lang == "ro":
        text = moses.romanian_preprocessing(text)
    if lowercase:
        text = moses.lowercase_and_remove_accent(text)
    return "".join(text.split())


def project(text: str, lang: str, lowercase: bool) -> str:
    """The character-by-character projection of a piece of input (the property tests compare it)."""
    return "".join(project_char(c, lang, lowercase) for c in text)


def token_spans(text: str, surfaces: list[str], lang: str, lowercase: bool) -> list[tuple[int, int]]:
    """One (start, end) span of `text` per token surface (surfaces in order, without "</w>")."""
    projected, source = [], []
    for i, char in enumerate(text):
        for p in project_char(char, lang, lowercase):
            projected.append(p)
            source.append(i)
    joined = "".join(surfaces)
    matched: list[int | None] = [None] * len(joined)
    matcher = difflib.SequenceMatcher(None, "".join(projected), joined, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            matched[b + k] = source[a + k]
    return _spans_from_matches(text, surfaces, matched)


def _spans_from_matches(text, surfaces, matched) -> list[tuple[int, int]]:
    # Spans may overlap (two tokens made from one expanded character, e.g. "…" -> "..", ".") but
    # their starts never go backwards.
    spans, pos, cursor = [], 0, 0
    for surface in surfaces:
        hits = [m for m in matched[pos:pos + len(surface)] if m is not None]
        pos += len(surface)
        if hits:
            start, end = min(hits), max(hits) + 1
        else:
            start = end = _next_visible(text, cursor)
        if spans:
            start = max(start, spans[-1][0])
            end = max(end, start)
        spans.append((start, end))
        cursor = max(cursor, end)
    return spans


def _next_visible(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i
