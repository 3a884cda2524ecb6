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
import re
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
    proj, joined = "".join(projected), "".join(surfaces)
    where: list[int | None] = [None] * len(joined)  # token character -> projected position
    for a, b, size in difflib.SequenceMatcher(None, proj, joined, autojunk=False).get_matching_blocks():
        where[b:b + size] = range(a, a + size)
    _rematch_moved(proj, joined, where)
    matched = [None if w is None else source[w] for w in where]
    return _spans_from_matches(text, surfaces, matched)


def _rematch_moved(proj: str, joined: str, where: list, window: int = 4) -> None:
    """Give an unmatched token character the nearest unused equal projected character.

    Moses moves a few characters (English: `"stop".` -> `stop."`, formats.md 2 via sacremoses'
    quote-comma rule); the longest-common-subsequence match keeps only one side of such a swap."""
    used = {w for w in where if w is not None}
    previous = -1
    for j, w in enumerate(where):
        if w is not None:
            previous = w
            continue
        guess = previous + 1
        for delta in sorted(range(-window, window + 1), key=abs):
            a = guess + delta
            if 0 <= a < len(proj) and a not in used and proj[a] == joined[j]:
                where[j], previous = a, a
                used.add(a)
                break


def _spans_from_matches(text, surfaces, matched) -> list[tuple[int, int]]:
    found: list[tuple[int, int] | None] = []
    pos = 0
    for surface in surfaces:
        hits = [m for m in matched[pos:pos + len(surface)] if m is not None]
        pos += len(surface)
        found.append((min(hits), max(hits) + 1) if hits else None)
    spans: list[tuple[int, int]] = []
    k = 0
    while k < len(found):
        if found[k] is not None:
            spans.append(found[k])
            k += 1
            continue
        run = k
        while k < len(found) and found[k] is None:
            k += 1
        spans += _fill_gap(text, spans[-1][1] if spans else 0, found[k][0] if k < len(found) else len(text), k - run)
    # Starts must not go backwards. Where a rewrite moved a token before its neighbour, widen the
    # earlier span to the left rather than shrink the later one: every span keeps its own characters.
    # Spans may overlap (two tokens made from one expanded character, e.g. "…" -> "..", ".").
    for k in range(len(spans) - 2, -1, -1):
        if spans[k][0] > spans[k + 1][0]:
            spans[k] = (spans[k + 1][0], spans[k][1])
    return spans


def _fill_gap(text: str, start: int, end: int, count: int) -> list[tuple[int, int]]:
    """Spans for `count` tokens made from characters that a rewrite merged (Moses: "''" -> '"'): the
    uncovered input between their neighbours, one whitespace-separated chunk per token in order."""
    chunks = [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", text[start:max(start, end)])]
    if not chunks:
        at = _next_visible(text, start)
        return [(at, at)] * count
    if len(chunks) < count:
        return [(chunks[0][0], chunks[-1][1])] + [(chunks[-1][1], chunks[-1][1])] * (count - 1)
    return chunks[:count - 1] + [(chunks[count - 1][0], chunks[-1][1])]


def _next_visible(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i
