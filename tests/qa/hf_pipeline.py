"""A transformers-based reading of transformers 4.x's question-answering pipeline (its fast-tokenizer path),
over transformers' own model and tokenizer: the reference that test_qa_answer.py compares xlmlib.qa.answer with,
and that scripts/bench_qa.py times. transformers 5 removed the pipeline, so the rules are written here from
cross-lingual-tasks.md section 4b: the tokenizer's overflowing windows (truncation="only_second", stride),
one forward per window, -10000 on tokens outside the context but the CLS token, softmax per window, the null
score, the band of the outer product, the best 2 * top_k + 10 spans, word alignment through the tokenizer's
token_to_word / word_to_chars, merging of equal answers, sort, cut. transformers is a test/benchmark
reference only; xlmlib never imports it."""

from __future__ import annotations

import numpy as np
import torch


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the n best scores, best first (the pipeline's argmax / argpartition + argsort)."""
    flat = scores.ravel()
    if n == 1:
        return np.array([np.argmax(flat)])
    if len(flat) < n:
        return np.argsort(-flat)
    part = np.argpartition(-flat, n)[:n]
    return part[np.argsort(-flat[part])]


def _window_spans(start, end, desired, top_k, max_answer_len, handle_impossible, min_null):
    start = np.where(desired, start, -10000.0).astype(np.float32)
    end = np.where(desired, end, -10000.0).astype(np.float32)
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    if handle_impossible:
        min_null = min(min_null, float(start[0] * end[0]))
    start[0] = end[0] = 0.0
    candidates = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    starts, ends = np.unravel_index(_top(candidates, 2 * top_k + 10), candidates.shape)
    allowed = np.flatnonzero(desired)
    keep = np.isin(starts, allowed) & np.isin(ends, allowed)
    return [(s, e, candidates[s, e]) for s, e in zip(starts[keep], ends[keep])], min_null


@torch.no_grad()
def hf_answers(model, tokenizer, questions: list[str], contexts: list[str], *, batch_size: int = 1, top_k: int = 1,
               max_seq_len: int = 384, doc_stride: int = 128, max_answer_len: int = 15,
               handle_impossible_answer: bool = False) -> list[list[dict]]:
    """The pipeline's answers (a list, best first) for each question; transformers' start / answer keep the
    space before a word, as the pipeline's did. batch_size 1 runs one forward per window (the pipeline's
    default); more pads that many windows into one forward (its batch_size option)."""
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    owner = enc["overflow_to_sample_mapping"]
    logits = []
    for first in range(0, len(owner), batch_size):
        rows = enc["input_ids"][first:first + batch_size]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        out = model(input_ids=ids, attention_mask=mask)
        logits += [(out.start_logits[i, :len(r)].numpy(), out.end_logits[i, :len(r)].numpy())
                   for i, r in enumerate(rows)]
    answers = [[] for _ in questions]
    min_null = [1e6] * len(questions)
    for k, (start, end) in enumerate(logits):
        n = owner[k]
        desired = np.array([part == 1 for part in enc.sequence_ids(k)])
        desired[np.array(enc["input_ids"][k]) == tokenizer.cls_token_id] = True  # the pipeline unmasks CLS
        spans, min_null[n] = _window_spans(start, end, desired, top_k, max_answer_len, handle_impossible_answer,
                                           min_null[n])
        _collect(answers[n], spans, enc.encodings[k], contexts[n])
    out = []
    for found, null in zip(answers, min_null):
        if handle_impossible_answer:
            found.append({"score": null, "start": 0, "end": 0, "answer": ""})
        out.append(sorted(found, key=lambda x: x["score"], reverse=True)[:top_k])
    return out


def _collect(answers: list[dict], spans, encoding, context: str) -> None:
    """Word-aligned characters of each span (the window's own words), equal answers merged case-insensitively."""
    for s, e, score in spans:
        a = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
        b = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
        text = context[a:b]
        same = next((x for x in answers if x["answer"].lower() == text.lower()), None)
        if same is not None:
            same["score"] += float(score)
        else:
            answers.append({"score": float(score), "start": a, "end": b, "answer": text})


def hf_answer(model, tokenizer, question: str, context: str, **options) -> list[dict]:
    """hf_answers for one question."""
    return hf_answers(model, tokenizer, [question], [context], **options)[0]
