"""Span decoding: from the scores of a question's windows to answers in the context's characters. Three rule
sets, each a pure function of per-window arrays and offsets (Window.offsets: None on tokens that are not
context):

- pipeline_answers: transformers 4.x's question-answering pipeline (fast-tokenizer path), for answering one
  question at a time (cross-lingual-tasks.md section 4b);
- run_qa_answer: run_qa's postprocess_qa_predictions, for evaluation (section 4a);
- beam_answer: QuestionAnsweringBeam's outputs by run_qa_beam_search's rules (transformers'
  examples/pytorch/question-answering/utils_qa.py, postprocess_qa_predictions_with_beam_search).

Scores are computed in float32, as transformers computes them from a float32 model's logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..tokenize.words import word_ids_for, word_spans

_MASKED = np.float32(-10000.0)  # the pipeline's value for tokens that cannot be part of an answer


def _context_tokens(offsets) -> np.ndarray:
    return np.fromiter((o is not None for o in offsets), dtype=bool, count=len(offsets))


# -- the pipeline's rules ----------------------------------------------------------------------------
def pipeline_answers(start_logits: Sequence, end_logits: Sequence, offsets: Sequence, context: str, *,
                     top_k: int = 1, max_answer_len: int = 15, handle_impossible: bool = False,
                     align_to_words: bool = True) -> list[dict]:
    """Answers {"answer", "start", "end", "score"} of one question, best first, at most top_k.

    Per window (one logits row and one offsets list each; rows may be longer than offsets, the rest is
    padding): logits of non-context tokens become -10000 except the first token's; start and end are
    soft-maxed separately; the null score is p_start[0] * p_end[0] (the minimum over windows, used with
    handle_impossible); then p_start[0] = p_end[0] = 0. Spans (i, j) with j >= i and j - i < max_answer_len
    score p_start[i] * p_end[j]; each window gives its best 2 * top_k + 10 (top_k without align_to_words).
    align_to_words widens a span to the whitespace-delimited words of its first and last tokens (a word cut
    by the window's edge to its characters inside the window, as the pipeline's words come from the window's
    encoding). A span whose text equals an answer already collected (case-insensitively) adds its score to
    it. Unlike transformers,
    spans outside that band are never returned (transformers can return some with score 0 when top_k exceeds
    the spans a short context has), and answers carry no leading space."""
    if top_k < 1 or max_answer_len < 1:
        raise ValueError(f"top_k and max_answer_len must be >= 1, got {top_k} and {max_answer_len}")
    per_window = 2 * top_k + 10 if align_to_words else top_k
    answers: list[dict] = []
    null = 1e6  # transformers' starting value: any window's null score is smaller
    for start, end, offs in zip(start_logits, end_logits, offsets, strict=True):
        p_start, p_end = _window_probs(start, end, offs)
        null = min(null, float(p_start[0] * p_end[0]))
        p_start[0] = p_end[0] = 0.0
        chars = _word_chars(context, offs) if align_to_words else None
        for i, j, score in _best_spans(p_start, p_end, offs, max_answer_len, per_window):
            a, b = (chars[i][0], chars[j][1]) if chars is not None else (offs[i][0], offs[j][1])
            _merge(answers, context, a, b, score)
    if handle_impossible:
        answers.append({"answer": "", "start": 0, "end": 0, "score": null})
    return sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]


def _window_probs(start, end, offsets) -> tuple[np.ndarray, np.ndarray]:
    wanted = _context_tokens(offsets)
    wanted[0] = True  # the first token (<s>) keeps its logit: some heads score "no answer" there
    out = []
    for logits in (start, end):
        x = np.where(wanted, np.asarray(logits, dtype=np.float32)[:len(offsets)], _MASKED)
        x = np.exp(x - x.max())
        out.append(x / x.sum())
    return out[0], out[1]


def _best_spans(p_start, p_end, offsets, max_answer_len: int, n: int):
    """(i, j, score) of the n best spans of context tokens in the band j >= i, j - i < max_answer_len.
    Equal scores keep (i, j) order."""
    context = np.flatnonzero(_context_tokens(offsets))
    if not context.size:
        return []
    scores = p_start[context][:, None] * p_end[context][None, :]
    i, j = np.indices(scores.shape)
    band = (j >= i) & (j - i < max_answer_len)
    flat = np.flatnonzero(band)
    order = flat[np.argsort(-scores.ravel()[flat], kind="stable")[:n]]
    rows, cols = np.unravel_index(order, scores.shape)
    return [(int(context[r]), int(context[c]), float(scores[r, c])) for r, c in zip(rows, cols)]


def _word_chars(context: str, offsets) -> dict[int, tuple[int, int]]:
    """Token index -> (start, end) of the whitespace-delimited word it belongs to (a lone SentencePiece "▁"
    belongs to the word after it), for the context tokens of one window. A word cut by the window's edge keeps
    only its characters inside the window: the pipeline's words come from the window's own encoding."""
    tokens = [i for i, o in enumerate(offsets) if o is not None]
    words = word_spans(context)
    if not words:
        return {i: tuple(offsets[i]) for i in tokens}
    ids = word_ids_for(context, [offsets[i] for i in tokens])
    inside: dict[int, tuple[int, int]] = {}
    for i, w in zip(tokens, ids):
        a, b = offsets[i]
        lo, hi = inside.get(w, (a, b))
        inside[w] = (min(lo, a), max(hi, b))
    # Clipped to the word: a lone "▁" piece's span is the space before the word.
    clipped = {w: (max(lo, words[w][0]), min(hi, words[w][1])) for w, (lo, hi) in inside.items()}
    return {i: clipped[w] for i, w in zip(tokens, ids)}


def _merge(answers: list[dict], context: str, a: int, b: int, score: float) -> None:
    text = context[a:b]
    for answer in answers:
        if answer["answer"].lower() == text.lower():
            answer["score"] += score
            return
    answers.append({"answer": text, "start": a, "end": b, "score": score})


# -- run_qa's rules ----------------------------------------------------------------------------------
def run_qa_answer(start_logits: Sequence, end_logits: Sequence, offsets: Sequence, context: str, *,
                  n_best: int = 20, max_answer_len: int = 30, version_2: bool = False,
                  null_threshold: float = 0.0) -> dict:
    """run_qa's answer to one question: {"text", "start", "end", "score", "null_score", "nbest"}.

    Per window: the n_best highest start and end logits pair into candidates whose tokens are both context,
    with end >= start and end - start + 1 <= max_answer_len, scored start_logit + end_logit. The null score
    is start_logit[0] + end_logit[0], the minimum over windows. Candidates are sorted and cut to n_best.
    v1: the best candidate's text. v2 (version_2): the best non-empty candidate unless null_score - its
    score > null_threshold, then "". Where run_qa answers "empty" for want of any candidate, this answers "".
    Windows are taken unpadded (run_qa pads to max_seq_length, so padding can take top-n places there)."""
    candidates, null = [], None
    for start, end, offs in zip(start_logits, end_logits, offsets, strict=True):
        start = np.asarray(start, dtype=np.float32)[:len(offs)]
        end = np.asarray(end, dtype=np.float32)[:len(offs)]
        if null is None or start[0] + end[0] < null["score"]:
            null = {"start": 0, "end": 0, "score": start[0] + end[0]}
        for i in _top(start, n_best):
            for j in _top(end, n_best):
                if offs[i] is None or offs[j] is None or j < i or j - i + 1 > max_answer_len:
                    continue
                candidates.append({"start": offs[i][0], "end": offs[j][1], "score": start[i] + end[j]})
    if version_2 and null is not None:
        candidates.append(null)
    nbest = sorted(candidates, key=lambda x: x["score"], reverse=True)[:n_best]
    if version_2 and null is not None and not any(c is null for c in nbest):
        nbest.append(null)
    nbest = [{**c, "text": context[c["start"]:c["end"]], "score": float(c["score"])} for c in nbest]
    null_score = None if null is None else float(null["score"])
    best = next((c for c in nbest if c["text"]), None)  # run_qa's "best non-null": the first non-empty text
    if best is None or (version_2 and null_score - best["score"] > null_threshold):
        best = {"text": "", "start": 0, "end": 0, "score": null_score if version_2 else None}
    elif not version_2:
        best = nbest[0]
    return {"text": best["text"], "start": best["start"], "end": best["end"], "score": best["score"],
            "null_score": null_score, "nbest": nbest}


def _top(logits: np.ndarray, n: int) -> list[int]:
    """Indices of the n highest values, highest first (equal values: lower index first)."""
    return np.argsort(-logits, kind="stable")[:n].tolist()


# -- run_qa_beam_search's rules ---------------------------------------------------------------------
def beam_answer(start_top_probs: Sequence, start_top_index: Sequence, end_top_probs: Sequence,
                end_top_index: Sequence, cls_logits: Sequence, offsets: Sequence, context: str, *,
                n_best: int = 20, max_answer_len: int = 30, version_2: bool = False,
                null_threshold: float = 0.0) -> dict:
    """QuestionAnsweringBeam's answer to one question: {"text", "start", "end", "score", "null_score", "nbest"}.

    Per window (rows of the head's outputs, qa/heads.py): start_n_top starts x end_n_top ends conditioned on
    each start; a candidate is kept under run_qa's checks (both tokens context, end >= start, length <=
    max_answer_len) and scored log p_start + log p_end. The null score is the minimum over windows of
    cls_logits (the answerability logit: high = unanswerable). The answer is the best candidate's text ("" when
    none); with version_2 it is "" when null_score > null_threshold.

    Two deliberate departures from utils_qa, both where it disagrees with the head it decodes: the head
    returns softmax probabilities under the *_log_probs names (modeling_xlm XLMSQuADHead) and utils_qa adds
    them as they are; here their logarithms are added, as the issue and XLNet's scoring intend. And the head
    lays the ends out end-rank-major (flat index = end rank * start_n_top + start rank), while utils_qa reads
    start rank * end_n_top + end rank, pairing a start with another start's ends; here each start gets its own.
    utils_qa itself leaves v2's no-answer decision to the evaluation script's threshold on the null score."""
    candidates, null = [], None
    for s_prob, s_idx, e_prob, e_idx, cls, offs in zip(start_top_probs, start_top_index, end_top_probs,
                                                       end_top_index, cls_logits, offsets, strict=True):
        s_prob, e_prob = np.asarray(s_prob, dtype=np.float32), np.asarray(e_prob, dtype=np.float32)
        n_start = len(s_prob)
        null = float(cls) if null is None else min(null, float(cls))
        with np.errstate(divide="ignore"):
            s_log, e_log = np.log(s_prob), np.log(e_prob)
        for flat, end in enumerate(np.asarray(e_idx).tolist()):
            rank = flat % n_start  # the start this end was conditioned on
            start = int(s_idx[rank])
            if start >= len(offs) or end >= len(offs) or offs[start] is None or offs[end] is None:
                continue
            if end < start or end - start + 1 > max_answer_len:
                continue
            candidates.append({"start": offs[start][0], "end": offs[end][1],
                               "score": float(s_log[rank] + e_log[flat])})
    nbest = sorted(candidates, key=lambda x: x["score"], reverse=True)[:n_best]
    nbest = [{**c, "text": context[c["start"]:c["end"]]} for c in nbest]
    best = nbest[0] if nbest else {"text": "", "start": 0, "end": 0, "score": None}
    if version_2 and null is not None and null > null_threshold:
        best = {"text": "", "start": 0, "end": 0, "score": None}
    return {"text": best["text"], "start": best["start"], "end": best["end"], "score": best["score"],
            "null_score": null, "nbest": nbest}
