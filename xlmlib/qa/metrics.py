"""Extractive QA metrics: exact match and token F1 as the official scripts compute them
(cross-lingual-tasks.md section 5): SQuAD v1.1's (also TyDiQA-GoldP's), MLQA's language-aware normalisation
for its seven languages (XTREME scores XQuAD and MLQA with it), and SQuAD v2's rules when some questions are
unanswerable.
"""

from __future__ import annotations

import logging
import re
import string
import sys
import unicodedata
from collections import Counter
from functools import lru_cache

logger = logging.getLogger(__name__)

MLQA_LANGS = ("en", "es", "de", "vi", "ar", "hi", "zh")
# MLQA's articles per language (mlqa_evaluation_v1.py). Its Arabic pattern `\sال^|ال` can only match by its
# second branch (`^` after other characters never matches), so every "ال" goes.
_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": "ال",
}
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = frozenset(string.punctuation)
_CJK = re.compile("[\u4e00-\u9fa5]")  # MLQA's mixed segmentation range
_warned_langs: set[str] = set()


@lru_cache(maxsize=1)
def _unicode_punct() -> frozenset:
    """MLQA's punctuation: every character whose Unicode category starts with P, plus string.punctuation."""
    return frozenset(chr(i) for i in range(sys.maxunicode)
                     if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCT


def normalize_answer(text: str, lang: str | None = None) -> str:
    """The official normalisation: lower-case, drop punctuation, drop articles, re-join the tokens with
    single spaces. lang in MLQA_LANGS: MLQA's rules (Unicode punctuation, the language's articles, Chinese
    mixed segmentation); anything else: SQuAD's (ASCII punctuation, English articles)."""
    text = text.lower()
    if lang not in MLQA_LANGS:
        text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
        return " ".join(_SQUAD_ARTICLES.sub(" ", text).split())
    punct = _unicode_punct()
    text = "".join(ch for ch in text if ch not in punct)
    if lang in _ARTICLES:
        text = re.sub(_ARTICLES[lang], " ", text)
    tokens = _mixed_segmentation(text, punct) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def _mixed_segmentation(text: str, punct: frozenset) -> list[str]:
    """Each CJK character (U+4E00-U+9FA5) and punctuation character alone, runs of the rest split on whitespace."""
    tokens, run = [], []
    for ch in text:
        if _CJK.match(ch) or ch in punct:
            tokens += "".join(run).split()
            run = []
            tokens.append(ch)
        else:
            run.append(ch)
    return tokens + "".join(run).split()


def _f1(prediction: list[str], gold: list[str], empty_rule: bool) -> float:
    """Bag-of-tokens F1. empty_rule (SQuAD v2): when either side has no token, 1 if both have none, else 0."""
    if empty_rule and (not prediction or not gold):
        return float(prediction == gold)
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _score(prediction: str, golds: list[str], lang: str | None, v2: bool) -> tuple[float, float]:
    """(exact, f1) of one prediction, the max over golds. v2: golds that normalise to nothing are left out and
    a question left without any has the gold [""] (SQuAD v2's script)."""
    pred = normalize_answer(prediction, lang)
    normed = [normalize_answer(g, lang) for g in golds]
    if v2:
        normed = [g for g in normed if g] or [""]
    exact = max(float(pred == g) for g in normed)
    f1 = max(_f1(pred.split(), g.split(), v2) for g in normed)
    return exact, f1


def qa_metrics(predictions: dict[str, str], references: dict[str, list[str]], lang: str | None = None) -> dict:
    """Exact match and F1 in percent over the reference questions: {"exact_match", "f1", "n"}.

    predictions: {id: answer text} ("" = no answer); references: {id: gold answer texts}, the empty list for
    an unanswerable question (squad.references builds it). lang in en es de vi ar hi zh: the MLQA script's
    normalisation; None: the SQuAD v1.1 script's; another code: SQuAD's too, said once in a warning. When some
    questions are unanswerable, SQuAD v2's rules apply (an empty prediction is right exactly on those) and
    HasAns_exact / HasAns_f1 / HasAns_total and NoAns_* are added for the two groups. A reference without a
    prediction counts as wrong (as the v1.1 and MLQA scripts count it), with one warning giving the count."""
    _check(predictions, references)
    if lang is not None and lang not in MLQA_LANGS and lang not in _warned_langs:
        _warned_langs.add(lang)
        logger.warning("qa_metrics: no official normalisation for %r (MLQA's covers %s); using SQuAD v1.1's",
                       lang, " ".join(MLQA_LANGS))
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        logger.warning("qa_metrics: %d of %d questions have no prediction (e.g. %s); they count as wrong",
                       len(missing), len(references), ", ".join(map(repr, missing[:3])))
    extra = len(set(predictions) - set(references))
    if extra:
        logger.warning("qa_metrics: %d predictions have no reference and are ignored", extra)
    v2 = any(not golds for golds in references.values())
    scores = {qid: _score(predictions[qid], golds, lang, v2) if qid in predictions else (0.0, 0.0)
              for qid, golds in references.items()}
    out = _summary(scores, list(references))
    if v2:
        for name, keep in (("HasAns", True), ("NoAns", False)):
            group = [qid for qid, golds in references.items() if bool(golds) == keep]
            if group:
                part = _summary(scores, group)
                out.update({f"{name}_exact": part["exact_match"], f"{name}_f1": part["f1"],
                            f"{name}_total": part["n"]})
    return out


def _summary(scores: dict, ids: list[str]) -> dict:
    n = len(ids)
    if not n:
        return {"exact_match": 0.0, "f1": 0.0, "n": 0}
    return {"exact_match": 100.0 * sum(scores[q][0] for q in ids) / n,
            "f1": 100.0 * sum(scores[q][1] for q in ids) / n, "n": n}


def _check(predictions, references) -> None:
    if not isinstance(predictions, dict) or not isinstance(references, dict):
        raise TypeError("qa_metrics takes predictions {id: text} and references {id: [gold texts]} as dicts")
    for qid, text in predictions.items():
        if not isinstance(text, str):
            raise TypeError(f"prediction for {qid!r} is {type(text).__name__}, expected the answer text (str)")
    for qid, golds in references.items():
        if isinstance(golds, str) or not all(isinstance(g, str) for g in golds):
            raise TypeError(f"references[{qid!r}] must be a list of gold answer texts (empty = unanswerable)")
