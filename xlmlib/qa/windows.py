"""Windows over long contexts (QA features): question + a stretch of the context, framed by the tokenizer,
with each token's character offsets into the context, its part of the pair, and training labels.

The rules are run_qa's `prepare_*_features` and the question-answering pipeline's (cross-lingual-tasks.md
sections 3 and 4b): the question is never cut (unless max_question_len asks), the context is cut into windows
of C = max_len - question tokens - specials tokens, starting at context token 0, C - doc_stride,
2 (C - doc_stride), ... until one reaches the end, so consecutive windows share doc_stride tokens. The framing
is the tokenizer's (family.py): XLM-R `<s> q </s></s> c </s>` (4 specials), XLM `<s> q </s> c </s>` (3).
Offsets are the words' own characters: a SentencePiece `▁word` piece does not cover the space before it
(transformers' offsets do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .squad import QAExample

MAX_LEN, DOC_STRIDE = 384, 128


@dataclass(frozen=True)
class Window:
    """One model input. offsets[i]: (start, end) characters of token i in the context, None for question and
    special tokens; sequence_ids[i]: 0 question, 1 context, None special (transformers' sequence_ids);
    example: index of the question this window belongs to. start_position / end_position / is_impossible are
    the training labels (None when not asked for): the tokens holding the first and last answer character, or
    (0, 0) and is_impossible=True when the answer does not lie wholly in this window's context."""

    input_ids: list[int]
    offsets: list[tuple[int, int] | None]
    sequence_ids: list[int | None]
    example: int
    langs: list[int] | None = None
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    @property
    def context_tokens(self) -> range:
        """Indices of this window's context tokens (contiguous)."""
        where = [i for i, s in enumerate(self.sequence_ids) if s == 1]
        return range(where[0], where[-1] + 1) if where else range(0)


def window_starts(n_context: int, capacity: int, doc_stride: int) -> list[int]:
    """First context token of each window: 0, C - stride, 2 (C - stride), ... until a window reaches the end."""
    starts = [0]
    while starts[-1] + capacity < n_context:
        starts.append(starts[-1] + capacity - doc_stride)
    return starts


def windows(tok, question, context, *, lang=None, max_len: int = MAX_LEN, doc_stride: int = DOC_STRIDE,
            max_question_len: int | None = None) -> list[Window]:
    """The windows of one question over one context, or of lists of them (Window.example says whose).

    `tok` is an xlmlib tokenizer (XLMRTokenizer or XLMTokenizer); `lang` one code or one per question (XLM:
    its language rules and, with language embeddings, the `langs` ids; XLM-R ignores it). The question is kept
    whole; max_question_len cuts it to that many tokens. A question that leaves no more than doc_stride context
    tokens per window, while the context needs several windows, is an error."""
    questions = [question] if isinstance(question, str) else list(question)
    contexts = [context] if isinstance(context, str) else list(context)
    if len(contexts) == 1 and len(questions) > 1:
        contexts = contexts * len(questions)  # many questions over one context, as the pipeline allows
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    examples = [QAExample(str(i), q, c) for i, (q, c) in enumerate(zip(questions, contexts))]
    return example_windows(tok, examples, lang=lang, max_len=max_len, doc_stride=doc_stride,
                           max_question_len=max_question_len, labels=False)


def example_windows(tok, examples: Sequence[QAExample], *, lang=None, max_len: int = MAX_LEN,
                    doc_stride: int = DOC_STRIDE, max_question_len: int | None = None,
                    labels: bool = True) -> list[Window]:
    """The windows of QAExamples, with training labels from each example's first answer (run_qa's rule)."""
    _check_lengths(max_len, doc_stride, max_question_len)
    if not examples:
        return []
    n_special = tok.framing.n_special(pair=True)
    questions, contexts, lang_ids = _encode(tok, examples, lang)
    out: list[Window] = []
    for k, example in enumerate(examples):
        q_ids = questions[k] if max_question_len is None else questions[k][:max_question_len]
        c_ids, c_spans = contexts[k]
        capacity = max_len - len(q_ids) - n_special
        _check_capacity(k, len(q_ids), capacity, len(c_ids), max_len, doc_stride)
        for start in window_starts(len(c_ids), capacity, doc_stride):
            stop = start + capacity
            window = _frame(tok, q_ids, c_ids[start:stop], c_spans[start:stop], k, lang_ids[k])
            out.append(_labelled(window, example) if labels else window)
    return out


def _check_lengths(max_len: int, doc_stride: int, max_question_len: int | None) -> None:
    if doc_stride < 0 or doc_stride >= max_len:
        raise ValueError(f"doc_stride must be in [0, max_len), got doc_stride={doc_stride}, max_len={max_len}")
    if max_question_len is not None and max_question_len < 1:
        raise ValueError(f"max_question_len must be >= 1 or None, got {max_question_len}")


def _check_capacity(k: int, n_question: int, capacity: int, n_context: int, max_len: int, doc_stride: int):
    if n_context > max(capacity, 0) and capacity <= doc_stride:
        raise ValueError(
            f"question {k} has {n_question} tokens, which leaves {max(capacity, 0)} context tokens per window of "
            f"max_len={max_len}; windows that overlap by doc_stride={doc_stride} need more: raise max_len, lower "
            "doc_stride or cut the question with max_question_len")


def _encode(tok, examples: Sequence[QAExample], lang):
    """Question ids, (context ids, context spans) and the language-embedding id of every example, through the
    tokenizer's public call (it checks the language codes); the framing it adds is taken off again."""
    questions = [e.question for e in examples]
    contexts = [e.context for e in examples]
    common = {"lang": lang, "padding": False, "truncation": False, "return_tensors": None}
    q = tok(questions, **common)
    c = tok(contexts, return_offsets=True, **common)
    q_ids = [tok.framing.strip(ids) for ids in q["input_ids"]]
    c_rows = [(tok.framing.strip(ids), tok.framing.strip(spans)) for ids, spans in zip(c["input_ids"], c.offsets)]
    langs = [row[0] for row in q["langs"]] if "langs" in q else [None] * len(examples)
    return q_ids, c_rows, langs


def _frame(tok, q_ids, c_ids, c_spans, example: int, lang_id) -> Window:
    framing, none = tok.framing, (lambda _: None)
    ids = framing.frame(q_ids, c_ids)
    offsets = framing.frame([None] * len(q_ids), [tuple(s) for s in c_spans], none)
    sequence_ids = framing.frame([0] * len(q_ids), [1] * len(c_ids), none)
    langs = None if lang_id is None else [lang_id] * len(ids)
    return Window(ids, offsets, sequence_ids, example, langs)


def _labelled(window: Window, example: QAExample) -> Window:
    """run_qa's labels: (0, 0) unless the first answer lies wholly in the window's context; then the last
    context token starting at or before the answer's first character, and the first context token ending at
    or after its last character (the tokens that hold them, where tokens tile the text)."""
    positions = (0, 0)
    context = window.context_tokens
    if example.answers and not example.is_impossible and len(context):
        text, first = example.answers[0]
        last = first + len(text)
        spans = window.offsets
        if spans[context[0]][0] <= first and spans[context[-1]][1] >= last:
            start = max(i for i in context if spans[i][0] <= first)
            end = min(i for i in context if spans[i][1] >= last)
            positions = (start, max(end, start))
    return Window(window.input_ids, window.offsets, window.sequence_ids, window.example, window.langs,
                  positions[0], positions[1], positions == (0, 0))


def collate(windows: Sequence[Window], pad_id: int, *, beam: bool = False) -> dict:
    """Padded tensors for `model(**batch)`: input_ids, attention_mask, langs (when the windows have them) and,
    when every window is labelled, labels = (start_positions, end_positions). beam=True adds what
    QuestionAnsweringBeam takes (run_qa_beam_search's features): p_mask (1.0 on tokens that cannot be part of an
    answer: question, specials but the first token, padding), cls_index (0, the first token) and
    is_impossible as a third label."""
    if not windows:
        raise ValueError("collate needs at least one window")
    width = max(len(w) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        ids[row, :len(w)] = torch.tensor(w.input_ids)
        mask[row, :len(w)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if windows[0].langs is not None:  # the whole row, padding included, as the tokenizer fills langs
        batch["langs"] = torch.tensor([w.langs[0] for w in windows])[:, None].expand(-1, width).contiguous()
    labelled = all(w.start_position is not None for w in windows)
    if labelled:
        batch["labels"] = (torch.tensor([w.start_position for w in windows]),
                           torch.tensor([w.end_position for w in windows]))
    if beam:
        batch["p_mask"] = _p_mask(windows, width)
        batch["cls_index"] = torch.zeros(len(windows), dtype=torch.long)
        if labelled:
            batch["labels"] += (torch.tensor([float(w.is_impossible) for w in windows]),)
    return batch


def _p_mask(windows: Sequence[Window], width: int) -> torch.Tensor:
    p_mask = torch.ones((len(windows), width))
    for row, w in enumerate(windows):
        p_mask[row, 0] = 0.0
        context = w.context_tokens
        p_mask[row, context.start:context.stop] = 0.0
    return p_mask
