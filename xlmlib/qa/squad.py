"""SQuAD-format QA data (SQuAD v1.1 / v2, XQuAD, MLQA, TyDiQA-GoldP): a strict reader that reports what it
skipped, the gold answers that qa_metrics takes, and the predictions file writer.

The format (cross-lingual-tasks.md section 2): {"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}. `answer_start` is a character
offset into the context; SQuAD v2 marks unanswerable questions with is_impossible and no answers (its
`plausible_answers` are ignored).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_json

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
_IDS_SHOWN = 5  # ids listed per skip reason in the report


class SquadFormatError(ValueError):
    """A SQuAD file that does not hold what the format says; the message names the file, the question id
    (or its position when the id itself is missing) and the field."""


@dataclass(frozen=True)
class QAExample:
    """One question over one context. answers: (text, character start) pairs, empty when unanswerable."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...] = ()
    is_impossible: bool = False
    title: str = ""

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


@dataclass(frozen=True)
class ReadReport:
    """What a read kept and what it skipped: skipped maps a reason to its count, skipped_ids to the first ids."""

    source: str
    n_articles: int = 0
    n_paragraphs: int = 0
    n_questions: int = 0
    n_unanswerable: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def __str__(self) -> str:
        line = (f"{self.source}: {self.n_questions} questions ({self.n_unanswerable} unanswerable) in "
                f"{self.n_paragraphs} paragraphs of {self.n_articles} articles")
        if not self.skipped:
            return line + "; nothing skipped"
        parts = [f"{n} x {reason} (e.g. {', '.join(self.skipped_ids[reason])})"
                 for reason, n in self.skipped.items()]
        return line + f"; skipped {self.n_skipped}: " + "; ".join(parts)


class _Problem(Exception):
    """One question's (or paragraph's) defect: `reason` is the category the report counts it under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def read_squad(path, *, on_error: str = "raise") -> tuple[list[QAExample], ReadReport]:
    """Questions of a SQuAD-format JSON file and a report of the read.

    on_error="raise" (default): the first defect raises SquadFormatError naming the file, the question id and
    the field (a missing field, a wrong type, a duplicate id, an answer_start that does not point at the
    answer text). on_error="skip": every defective question is left out, counted by reason in the report
    and logged as one warning; nothing is dropped without being counted."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"SQuAD file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SquadFormatError(f"{path}: not a JSON file: {err}") from None
    return parse_squad(data, source=str(path), on_error=on_error)


def parse_squad(data, *, source: str = "<data>", on_error: str = "raise") -> tuple[list[QAExample], ReadReport]:
    """read_squad on an already loaded JSON object (`source` names it in messages)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise SquadFormatError(f"{source}: expected a JSON object with a 'data' list of articles (SQuAD format)")
    state = _ReadState(source, on_error)
    for i, article in enumerate(articles):
        state.article(article, f"data[{i}]")
    report = state.report(len(articles))
    if report.skipped:
        logger.warning("%s", report)
    else:
        logger.info("%s", report)
    return state.examples, report


class _ReadState:
    """The examples read so far, the ids seen, and the skips counted."""

    def __init__(self, source: str, on_error: str):
        self.source, self.on_error = source, on_error
        self.examples: list[QAExample] = []
        self.seen: set[str] = set()
        self.n_paragraphs = 0
        self.skipped: Counter = Counter()
        self.skipped_ids: dict[str, list[str]] = {}

    def fail(self, problem: _Problem, who: str, n: int = 1) -> None:
        if self.on_error == "raise":
            raise SquadFormatError(f"{self.source}: {who}: {problem.detail}") from None
        self.skipped[problem.reason] += n
        shown = self.skipped_ids.setdefault(problem.reason, [])
        if len(shown) < _IDS_SHOWN:
            shown.append(who)

    def article(self, article, where: str) -> None:
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            n = _count_questions(article)
            self.fail(_Problem("article without a 'paragraphs' list", "no 'paragraphs' list"), where, max(n, 1))
            return
        title = article.get("title", "")
        for j, paragraph in enumerate(article["paragraphs"]):
            self.paragraph(paragraph, str(title) if title is not None else "", f"{where}.paragraphs[{j}]")

    def paragraph(self, paragraph, title: str, where: str) -> None:
        self.n_paragraphs += 1
        qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
        if not isinstance(qas, list):
            self.fail(_Problem("paragraph without a 'qas' list", "no 'qas' list"), where)
            return
        context = paragraph.get("context")
        if not isinstance(context, str):
            problem = _Problem("paragraph without a 'context' string",
                               f"'context' is {_kind(context)}, not a string")
            self.fail(problem, where, max(len(qas), 1))
            return
        for k, qa in enumerate(qas):
            qid = qa.get("id") if isinstance(qa, dict) else None
            who = f"question {qid!r} ({where}.qas[{k}])" if isinstance(qid, str) else f"{where}.qas[{k}]"
            try:
                example = _question(qa, context, title, self.seen)
            except _Problem as problem:
                self.fail(problem, who)
                continue
            self.seen.add(example.id)
            self.examples.append(example)

    def report(self, n_articles: int) -> ReadReport:
        return ReadReport(self.source, n_articles, self.n_paragraphs, len(self.examples),
                          sum(e.is_impossible for e in self.examples), dict(self.skipped), dict(self.skipped_ids))


def _kind(value) -> str:
    return "missing" if value is None else type(value).__name__


def _count_questions(article) -> int:
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    if not isinstance(paragraphs, list):
        return 0
    return sum(len(p["qas"]) for p in paragraphs if isinstance(p, dict) and isinstance(p.get("qas"), list))


def _field(qa: dict, name: str, kind: type):
    value = qa.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Problem(f"missing or mistyped '{name}'", f"'{name}' is {_kind(value)}, expected {kind.__name__}")
    return value


def _question(qa, context: str, title: str, seen: set[str]) -> QAExample:
    if not isinstance(qa, dict):
        raise _Problem("question that is not a JSON object", f"expected an object, got {_kind(qa)}")
    qid = _field(qa, "id", str)
    if qid in seen:
        raise _Problem("duplicate id", f"the id {qid!r} was used by an earlier question")
    question = _field(qa, "question", str)
    if not question.strip():
        raise _Problem("empty question", "the question is empty")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise _Problem("missing or mistyped 'is_impossible'",
                       f"'is_impossible' is {_kind(impossible)}, expected bool")
    answers = tuple(_answer(a, n, context) for n, a in enumerate(_field(qa, "answers", list)))
    if impossible and answers:
        raise _Problem("unanswerable question with answers",
                       f"is_impossible is true but it has {len(answers)} answers")
    if not impossible and not answers:
        raise _Problem("answerable question without answers",
                       "'answers' is empty and is_impossible is not true (SQuAD v2 marks unanswerable questions)")
    return QAExample(qid, question, context, answers, impossible, title)


def _answer(answer, n: int, context: str) -> tuple[str, int]:
    if not isinstance(answer, dict):
        raise _Problem("answer that is not a JSON object", f"answers[{n}] is {_kind(answer)}, not an object")
    text, start = answer.get("text"), answer.get("answer_start")
    if not isinstance(text, str) or not text:
        raise _Problem("missing or empty answer 'text'", f"answers[{n}].text is {text!r}")
    if not isinstance(start, int) or isinstance(start, bool):
        raise _Problem("missing or mistyped 'answer_start'",
                       f"answers[{n}].answer_start is {_kind(start)}, expected int")
    found = context[start:start + len(text)] if 0 <= start <= len(context) else None
    if found != text:
        shown = "outside the context" if found is None else f"context[{start}:{start + len(text)}] is {found!r}"
        raise _Problem("answer_start that does not point at the answer text",
                       f"answers[{n}].answer_start {start} does not point at the answer text {text!r}: {shown}")
    return text, start


def examples_from_records(records, *, source: str = "examples") -> list[QAExample]:
    """QAExamples from flat records {"id", "question", "context", "answers", "is_impossible"?, "title"?}, with
    answers as a list of {"text", "answer_start"} or in the columns layout of Hugging Face datasets' SQuAD
    ({"text": [...], "answer_start": [...]}). The same checks as read_squad; the first defect raises, naming
    `source`, the record's index and its id."""
    examples, seen = [], set()
    for i, record in enumerate(records):
        if isinstance(record, QAExample):
            examples.append(record)
            seen.add(record.id)
            continue
        where = f"{source}[{i}]"
        if not isinstance(record, dict):
            raise SquadFormatError(f"{where}: expected a dict, got {type(record).__name__}")
        qid = record.get("id")
        who = f"{where} (question {qid!r})" if isinstance(qid, str) else where
        context = record.get("context")
        try:
            if not isinstance(context, str):
                raise _Problem("", f"'context' is {_kind(context)}, expected str")
            example = _question({**record, "answers": _answer_list(record.get("answers"))}, context,
                                str(record.get("title") or ""), seen)
        except _Problem as problem:
            raise SquadFormatError(f"{who}: {problem.detail}") from None
        seen.add(example.id)
        examples.append(example)
    return examples


def _answer_list(answers):
    """Answers as a list of {"text", "answer_start"}; the datasets layout is turned into it."""
    if isinstance(answers, dict) and set(answers) >= {"text", "answer_start"}:
        texts, starts = list(answers["text"]), list(answers["answer_start"])
        if len(texts) != len(starts):
            raise _Problem("", f"answers has {len(texts)} texts but {len(starts)} answer_start values")
        return [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    return answers


def references(examples: Iterable[QAExample]) -> dict[str, list[str]]:
    """{id: gold answer texts} for qa_metrics; an unanswerable question has the empty list."""
    return {e.id: [] if e.is_impossible else e.answer_texts for e in examples}


def write_predictions(path, predictions: dict[str, str]) -> Path:
    """The predictions file of the official scripts, {id: answer text} ("" = no answer), written atomically."""
    for qid, text in predictions.items():
        if not isinstance(qid, str) or not isinstance(text, str):
            raise TypeError(f"predictions map str ids to str answers; got {qid!r}: {type(text).__name__}")
    write_json(path, dict(predictions))
    return Path(path)
