"""The Moses preprocessing that XLM applies before BPE (formats.md section 2), made fast.

Reference behaviour: transformers' XLMTokenizer, which calls replace-unicode-punctuation (a port of the
Moses perl script), sacremoses.MosesPunctNormalizer(lang).normalize, a removal of Unicode category C,
Sennrich's Romanian normalisation and sacremoses.MosesTokenizer(lang).tokenize(escape=False).

The sacremoses classes apply some 30 regular expressions per sentence, most of which cannot match a
given sentence; that is where transformers spends most of its time. `PunctNormalizer` and
`MosesTokenizer` below run the *same* sacremoses rules (read from sacremoses' own objects, in the
order sacremoses applies them) but skip a rule when a character it needs is absent, and replace the
per-token regex/set work of the non-breaking-prefix step with precomputed sets. Token identity with
sacremoses is checked in tests/tokenize/test_tokenizer_moses.py on Tatoeba text and with hypothesis.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

try:  # Python >= 3.11
    from re import _constants as _sre_c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c
    import sre_parse as _sre_parse

import sacremoses

# replace-unicode-punctuation.perl (mosesdecoder scripts/tokenizer): full-width and CJK punctuation to
# ASCII. Only single characters are mapped here; "。" and "．" plus following whitespace become ". ".
_UNICODE_PUNCT = str.maketrans({
    "，": ",", "、": ",", "”": '"', "“": '"', "∶": ":", "：": ":", "？": "?", "《": '"', "》": '"',
    "）": ")", "！": "!", "（": "(", "；": ";", "」": '"', "「": '"', "～": "~", "’": "'",
    "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%",
    **{chr(0xFF10 + d): str(d) for d in range(10)},
})
_FULL_STOPS = re.compile(r"[。．]\s*")
# Sennrich's WMT16 Romanian normalisation (cedilla forms to comma forms, then diacritics dropped).
_ROMANIAN = str.maketrans({"Ş": "S", "Ș": "S", "ş": "s", "ș": "s", "Ţ": "T", "Ț": "T", "ţ": "t", "ț": "t",
                           "Ă": "A", "ă": "a", "Â": "A", "â": "a", "Î": "I", "î": "i"})


def replace_unicode_punct(text: str) -> str:
    if text.isascii():
        return text
    text = text.translate(_UNICODE_PUNCT)
    if "。" in text or "．" in text:
        text = _FULL_STOPS.sub(". ", text)
    return text


def remove_non_printing(text: str) -> str:
    """Drop Unicode category C (remove-non-printing-char.perl)."""
    # str.isprintable() is False for every C* (and Z* other than " ") character, so True means no work.
    if text.isprintable():
        return text
    return "".join(c for c in text if unicodedata.category(c)[0] != "C")


def romanian_preprocessing(text: str) -> str:
    return text.translate(_ROMANIAN)


def lowercase_and_remove_accent(token: str) -> str:
    """lower(), NFD, drop Mn, lower() (XLM tools/lowercase_and_remove_accent.py), for one token.

    XLM applies it to the tokens joined by spaces; per token is the same, because Python's only
    context-dependent lowercasing (final sigma) looks at cased letters, and a space is not one.
    """
    if token.isascii():
        return token.lower()
    text = unicodedata.normalize("NFD", token.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn").lower()


# -- rule prefilters ---------------------------------------------------------------------------
def _required_chars(pattern: str):
    """A set of characters one of which every match of `pattern` contains, or None if unknown."""
    try:
        parsed = _sre_parse.parse(pattern)
    except (re.error, ValueError, RecursionError):  # an unparseable pattern is simply always applied
        return None
    return _required(list(parsed))


def _required(items):
    best = None
    for op, av in items:
        cand = None
        if op is _sre_c.LITERAL:
            cand = frozenset(chr(av))
        elif op is _sre_c.IN:
            cand = _class_chars(av)
        elif op is _sre_c.SUBPATTERN:
            cand = _required(list(av[-1]))
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT) and av[0] >= 1:
            cand = _required(list(av[2]))
        if cand and (best is None or _cost(cand) < _cost(best)):
            best = cand
    return best


def _class_chars(av):
    chars = set()
    for op, arg in av:
        if op is _sre_c.LITERAL:
            chars.add(chr(arg))
        elif op is _sre_c.RANGE and arg[1] - arg[0] < 64:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        else:  # negated classes, categories, big ranges: no usable requirement
            return None
    return frozenset(chars)


def _cost(chars) -> tuple:
    # Prefer requirements that are rarely met: no space, few characters.
    return (" " in chars, len(chars))


class _Rule:
    __slots__ = ("needs", "regex", "repl", "substring")

    def __init__(self, regex, repl):
        self.regex = regex if hasattr(regex, "sub") else re.compile(regex)
        self.repl = repl
        pattern = self.regex.pattern
        # " +" -> " " only changes a text holding two spaces in a row.
        self.substring = "  " if pattern == " +" and repl == " " else None
        self.needs = None if self.substring else _required_chars(pattern)

    def apply(self, text: str) -> str:
        if self.substring is not None:
            if self.substring not in text:
                return text
        elif self.needs is not None:
            for c in self.needs:
                if c in text:
                    break
            else:
                return text
        return self.regex.sub(self.repl, text)


class PunctNormalizer:
    """sacremoses.MosesPunctNormalizer(lang).normalize with prefiltered rules."""

    def __init__(self, lang: str):
        ref = sacremoses.MosesPunctNormalizer(lang=lang)
        if ref.pre_replace_unicode_punct or ref.post_remove_control_chars:
            raise RuntimeError("unexpected sacremoses normaliser defaults")
        self.rules = [_Rule(p, r) for p, r in ref.substitutions]

    def normalize(self, text: str) -> str:
        for rule in self.rules:
            text = rule.apply(text)
        return text.strip()


class MosesTokenizer:
    """sacremoses.MosesTokenizer(lang).tokenize(text, escape=False) (no dash splitting, no protected
    patterns), with the rules applied in sacremoses' order and skipped when they cannot match."""

    def __init__(self, lang: str):
        self.ref = ref = sacremoses.MosesTokenizer(lang=lang)
        self.lang = lang
        self.dedup = ref.DEDUPLICATE_SPACE[0]
        self.junk = ref.ASCII_JUNK
        self.pad = ref.PAD_NOT_ISALNUM
        self.commas = [_Rule(*r) for r in (ref.COMMA_SEPARATE_1, ref.COMMA_SEPARATE_2, ref.COMMA_SEPARATE_3)]
        if lang == "en":
            apostrophe = ref.ENGLISH_SPECIFIC_APOSTROPHE
        elif lang in ("fr", "it"):
            apostrophe = ref.FR_IT_SPECIFIC_APOSTROPHE
        else:
            apostrophe = [ref.NON_SPECIFIC_APOSTROPHE]
        self.apostrophe = [_Rule(*r) for r in apostrophe]
        self.trailing = _Rule(*ref.TRAILING_DOT_APOSTROPHE)
        self.prefixes = frozenset(ref.NONBREAKING_PREFIXES)
        self.numeric_only = frozenset(ref.NUMERIC_ONLY_PREFIXES)
        self.alpha = frozenset(ref.IsAlpha)
        self.lower = frozenset(ref.IsLower)

    def tokenize(self, text: str) -> list[str]:
        text = self.dedup.sub(" ", text)
        if not text.isprintable():  # every [\x00-\x1f] character is non-printable
            text = self.junk[0].sub(self.junk[1], text)
        text = text.strip()
        text = self.pad[0].sub(self.pad[1], text)
        if ".." in text:
            text = self.ref.replace_multidots(text)
        if "," in text:
            for rule in self.commas:
                text = rule.apply(text)
        if "'" in text:
            for rule in self.apostrophe:
                text = rule.apply(text)
        tokens = text.split()
        if "." in text:
            tokens = self._nonbreaking(tokens)
        if ".'" in text:
            tokens = self.trailing.apply(" ".join(tokens)).split()
        if "MULTI" in text:
            tokens = self.ref.restore_multidots(" ".join(tokens)).split()
        return tokens

    def _nonbreaking(self, tokens: list[str]) -> list[str]:
        """sacremoses' handles_nonbreaking_prefixes: split a final "." off a token unless the token is
        a known abbreviation, contains an inner period and a letter, or the next token starts in
        lowercase (or, for numeric-only prefixes, with a digit)."""
        last = len(tokens) - 1
        out, changed = list(tokens), False
        for i, token in enumerate(tokens):
            if len(token) < 2 or token[-1] != ".":
                continue
            prefix = token[:-1]
            nxt = tokens[i + 1] if i < last else ""
            if ("." in prefix and any(c in self.alpha for c in prefix)) \
                    or (prefix in self.prefixes and prefix not in self.numeric_only) \
                    or (nxt and nxt[0] in self.lower):
                continue
            if prefix in self.numeric_only and nxt and nxt[0] in "0123456789":
                continue
            out[i] = prefix + " ."
            changed = True
        return " ".join(out).split() if changed else out


@cache
def punct_normalizer(lang: str) -> PunctNormalizer:
    return PunctNormalizer(lang)


@cache
def moses_tokenizer(lang: str) -> MosesTokenizer:
    return MosesTokenizer(lang)


def moses_pipeline(text: str, lang: str) -> str:
    """Punctuation replacement, Moses normalisation and non-printing removal (before tokenising)."""
    return remove_non_printing(punct_normalizer(lang).normalize(replace_unicode_punct(text)))
