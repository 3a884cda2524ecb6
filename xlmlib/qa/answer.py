"""Answering questions with a QA model: `answer` (the question-answering pipeline's rules, one question or a
list, batched) and `predict` (run_qa's rules over SQuAD examples, for evaluation). QuestionAnswering models of
both families decode by those rules; XLM's QuestionAnsweringBeam by run_qa_beam_search's (decode.py)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm

from ..languages import tokenizer_options
from .decode import beam_answer, pipeline_answers, run_qa_answer
from .heads import QuestionAnswering, QuestionAnsweringBeam
from .squad import QAExample
from .windows import DOC_STRIDE, MAX_LEN, Window, collate, example_windows, windows

logger = logging.getLogger(__name__)


@torch.no_grad()
def answer(model, tok, question, context, *, lang=None, top_k: int = 1, max_len: int = MAX_LEN,
           doc_stride: int = DOC_STRIDE, max_answer_len: int = 15, handle_impossible: bool = False,
           max_question_len: int | None = None, batch_size: int = 32):
    """The answer to a question in a context: {"answer", "start", "end", "score"}, a list of such dicts (best
    first) when top_k > 1. start / end are character offsets into the context and answer == context[start:end]
    (the words' own characters, no leading space). Lists of questions and contexts (or many questions and one
    context) give a list with one result per question; the windows of all of them are batched, batch_size
    windows per forward.

    The rules are transformers 4.x's question-answering pipeline's (decode.pipeline_answers): windows of
    max_len tokens overlapping by doc_stride, scores p_start * p_end within a window, answers widened to whole
    words, equal answers merged; handle_impossible adds the no-answer {"answer": "", "start": 0, "end": 0}.
    A QuestionAnsweringBeam model decodes by run_qa_beam_search's candidates (decode.beam_answer): score =
    p_start * p_end of its beams, no word widening, and the no-answer score is sigmoid of its answerability logit.
    lang: XLM's language (checked against the model's codes when it has language embeddings); XLM-R ignores it."""
    single = isinstance(question, str) and isinstance(context, str)
    questions, contexts = _as_lists(question, context)
    if top_k < 1 or max_answer_len < 1:
        raise ValueError(f"top_k and max_answer_len must be >= 1, got {top_k} and {max_answer_len}")
    lang = _model_lang(model, tok, lang, len(questions))
    max_len, doc_stride = _fit(model, max_len, doc_stride)
    wins = windows(tok, questions, contexts, lang=lang, max_len=max_len, doc_stride=doc_stride,
                   max_question_len=max_question_len)
    outputs = _run(model, tok, wins, batch_size, progress=False, desc="answer")
    results = []
    for k, (context_k, rows) in enumerate(zip(contexts, _by_example(wins, outputs, len(questions)))):
        if isinstance(model, QuestionAnsweringBeam):
            found = _beam_top(rows, context_k, top_k, max_answer_len, handle_impossible)
        else:
            found = pipeline_answers(*_logit_rows(rows), [w.offsets for w, _ in rows], context_k, top_k=top_k,
                                     max_answer_len=max_answer_len, handle_impossible=handle_impossible)
        if top_k == 1:
            found = found[0] if found else {"answer": "", "start": 0, "end": 0, "score": 0.0}
        results.append(found)
    return results[0] if single else results


@torch.no_grad()
def predict(model, tok, examples: Sequence[QAExample], *, lang=None, n_best: int = 20, max_answer_len: int = 30,
            null_threshold: float = 0.0, version_2: bool = False, max_len: int = MAX_LEN,
            doc_stride: int = DOC_STRIDE, max_question_len: int | None = None, batch_size: int = 32,
            progress: bool = True) -> dict[str, str]:
    """{id: answer text} for SQuAD examples (squad.read_squad), by run_qa's rules (decode.run_qa_answer:
    n_best start and end logits, spans up to max_answer_len tokens; version_2: "" when the null score beats
    the best span by more than null_threshold), or run_qa_beam_search's for a QuestionAnsweringBeam model.
    What qa_metrics and squad.write_predictions take. progress: a tqdm bar over the batches."""
    examples = list(examples)
    lang = _model_lang(model, tok, lang, len(examples))
    max_len, doc_stride = _fit(model, max_len, doc_stride)
    wins = example_windows(tok, examples, lang=lang, max_len=max_len, doc_stride=doc_stride,
                           max_question_len=max_question_len, labels=False)
    outputs = _run(model, tok, wins, batch_size, progress=progress, desc="predict")
    options = {"n_best": n_best, "max_answer_len": max_answer_len, "version_2": version_2,
               "null_threshold": null_threshold}
    out = {}
    for example, rows in zip(examples, _by_example(wins, outputs, len(examples))):
        offsets = [w.offsets for w, _ in rows]
        if isinstance(model, QuestionAnsweringBeam):
            found = beam_answer(*zip(*(o for _, o in rows)), offsets, example.context, **options)
        else:
            found = run_qa_answer(*_logit_rows(rows), offsets, example.context, **options)
        out[example.id] = found["text"]
    return out


def _as_lists(question, context) -> tuple[list[str], list[str]]:
    questions = [question] if isinstance(question, str) else list(question)
    contexts = [context] if isinstance(context, str) else list(context)
    if len(contexts) == 1 and len(questions) > 1:
        contexts = contexts * len(questions)
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    for what, texts in (("question", questions), ("context", contexts)):
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{what} {i} is empty or not a string: {text!r}")
    return questions, contexts


def _model_lang(model, tok, lang, n: int):
    """The `lang` for the tokenizer, by the rule of every entry point (languages.py): an XLM model with language
    embeddings needs one of its codes (one, or one per question); XLM-R has no language input, so a code is
    ignored with a one-time warning."""
    if not isinstance(model, (QuestionAnswering, QuestionAnsweringBeam)):
        raise TypeError(f"answering needs a QuestionAnswering or QuestionAnsweringBeam model, got "
                        f"{type(model).__name__}: load it with xlmlib.load(src, task='question-answering')")
    codes = [lang] * n if lang is None or isinstance(lang, str) else list(lang)
    used = [tokenizer_options(model, tok, code).get("lang") for code in dict.fromkeys(codes)]
    return lang if any(code is not None for code in used) else None


def _fit(model, max_len: int, doc_stride: int) -> tuple[int, int]:
    """max_len cut to what the model's positions allow (with a warning), doc_stride kept below it."""
    limit = model.config.max_tokens
    if max_len > limit:
        warnings.warn(f"max_len {max_len} is longer than the model takes; using {limit}", stacklevel=3)
        max_len = limit
        if doc_stride >= max_len // 2:
            doc_stride = max_len // 4
    return max_len, doc_stride


@contextmanager
def _eval_mode(model):
    """Inference without dropout; the model's own mode is put back afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _run(model, tok, wins: list[Window], batch_size: int, *, progress: bool, desc: str) -> list[tuple]:
    """The head's outputs for every window, in window order, as numpy rows cut to the window's length.
    Windows are batched longest first, so a batch pads little."""
    beam = isinstance(model, QuestionAnsweringBeam)
    order = sorted(range(len(wins)), key=lambda i: -len(wins[i]))
    device = next(model.parameters()).device
    outputs: list[tuple | None] = [None] * len(wins)
    starts = range(0, len(order), batch_size)
    with _eval_mode(model):
        for first in tqdm(starts, disable=not progress, desc=desc, unit="batch"):
            index = order[first:first + batch_size]
            batch = collate([wins[i] for i in index], tok.pad_id, beam=beam)
            mask = batch.pop("attention_mask")  # on the CPU: the model reads the padding layout from it
            out = model(**{k: v.to(device) for k, v in batch.items()}, attention_mask=mask)
            for row, i in enumerate(index):
                outputs[i] = _row(out, row, len(wins[i]), beam)
    return outputs


def _row(out, row: int, length: int, beam: bool) -> tuple:
    if beam:
        fields = (out.start_top_log_probs, out.start_top_index, out.end_top_log_probs, out.end_top_index)
        return tuple(t[row].float().cpu().numpy() if t.is_floating_point() else t[row].cpu().numpy()
                     for t in fields) + (float(out.cls_logits[row]),)
    return tuple(t[row, :length].float().cpu().numpy() for t in (out.start_logits, out.end_logits))


def _by_example(wins: list[Window], outputs: list[tuple], n: int) -> list[list[tuple[Window, tuple]]]:
    groups: list[list] = [[] for _ in range(n)]
    for w, o in zip(wins, outputs):
        groups[w.example].append((w, o))
    return groups


def _logit_rows(rows) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [o[0] for _, o in rows], [o[1] for _, o in rows]


def _beam_top(rows, context: str, top_k: int, max_answer_len: int, handle_impossible: bool) -> list[dict]:
    """answer()'s list for the beam head: its best candidates as probabilities, plus the no-answer entry."""
    found = beam_answer(*zip(*(o for _, o in rows)), [w.offsets for w, _ in rows], context,
                        n_best=max(top_k, 20), max_answer_len=max_answer_len)
    answers = [{"answer": c["text"], "start": c["start"], "end": c["end"], "score": math.exp(c["score"])}
               for c in found["nbest"]]
    if handle_impossible:
        answers.append({"answer": "", "start": 0, "end": 0, "score": 1 / (1 + math.exp(-found["null_score"]))})
    return sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
