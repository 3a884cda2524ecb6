"""Readers of fine-tuning data, strict: a file that does not hold what its format says is refused with its
name, the line and what was expected, never read into wrong examples.

Sequence classification (FORMATS below): a TSV with a header row naming its columns (PAWS-X: id, sentence1,
sentence2, label), a headerless TSV (XNLI via XGLUE: premise, hypothesis, label; or text, label), or JSONL.
Token classification: CoNLL, the word in the first column and its tag in the last, a blank line between
sentences, -DOCSTART- lines skipped. Every example remembers where it came from (`where`, "file:line"),
so a later error (an unknown label) can name it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data import read_lines

FIRST = ("premise", "sentence1", "text", "sentence")
SECOND = ("hypothesis", "sentence2", "text_pair")
# Columns a header may name besides the texts and the label (they are read or ignored, never taken as text).
OTHER_COLUMNS = ("label", "lang", "language", "id", "guid")
FORMATS = ("a TSV whose header row names a text column (premise | sentence1 | text | sentence), optionally a "
           "second one (hypothesis | sentence2 | text_pair), and label; a headerless TSV with text<TAB>label or "
           "text<TAB>text_pair<TAB>label on every line; or JSONL, one object per line with those keys (and lang)")
CONLL_FORMAT = "CoNLL: `word ... tag` per line (whitespace-separated, tag last), a blank line between sentences"


@dataclass(frozen=True)
class Example:
    """One sequence-classification pair (text_pair "" for single sentences) or one tagged sentence
    (words and tags set, text unused); `where` names its source ("file:line"), for error messages."""

    text: str = ""
    text_pair: str = ""
    label: str = ""
    lang: str = ""
    words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    where: str = field(default="", compare=False)


class DataError(ValueError):
    """A data file that does not hold what its format says (the message names the file and line)."""


def _pick(row: dict, names, where: str, required: bool) -> str:
    for name in names:
        if name in row:
            return str(row[name])
    if required:
        raise DataError(f"{where}: none of the fields {', '.join(names)} (expected {FORMATS})")
    return ""


def _label(row: dict, where: str) -> str:
    if "label" not in row or str(row["label"]).strip() == "":
        raise DataError(f"{where}: no label (expected {FORMATS})")
    return str(row["label"]).strip()


def example_from_dict(row: dict, lang: str, where: str) -> Example:
    """A classification example from a JSONL object or a header-named TSV row."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
    return Example(_pick(row, FIRST, where, True), _pick(row, SECOND, where, False), _label(row, where),
                   str(row.get("lang", row.get("language", lang)) or lang), where=where)


def _jsonl(path: Path, lines: list[tuple[int, str]], lang: str) -> list[Example]:
    out = []
    for n, line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: invalid JSON ({err.msg}); expected {FORMATS}") from None
        out.append(example_from_dict(row, lang, f"{path}:{n}"))
    return out


def _header(cells: list[str]) -> bool:
    """Whether a first row names columns: any cell is a known column name."""
    known = {*FIRST, *SECOND, *OTHER_COLUMNS}
    return any(c.strip().lower() in known for c in cells)


def _named_tsv(path: Path, lines: list[tuple[int, str]], lang: str) -> list[Example]:
    header = [c.strip().lower() for c in lines[0][1].split("\t")]
    if not any(h in header for h in FIRST):
        raise DataError(f"{path}:{lines[0][0]}: the header names {', '.join(header)} but no text column "
                        f"({' | '.join(FIRST)}); expected {FORMATS}")
    if "label" not in header:
        raise DataError(f"{path}:{lines[0][0]}: the header names {', '.join(header)} but no label column; "
                        f"expected {FORMATS}")
    out = []
    for n, line in lines[1:]:
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataError(f"{path}:{n}: {len(cells)} tab-separated columns where the header names "
                            f"{len(header)} ({', '.join(header)})")
        out.append(example_from_dict(dict(zip(header, cells)), lang, f"{path}:{n}"))
    return out


def _plain_tsv(path: Path, lines: list[tuple[int, str]], lang: str) -> list[Example]:
    width = len(lines[0][1].split("\t"))
    out = []
    for n, line in lines:
        cells = line.split("\t")
        if len(cells) not in (2, 3) or len(cells) != width:
            want = "2 or 3" if len(cells) not in (2, 3) else f"{width}, as line {lines[0][0]}"
            hint = " (the line has commas: comma-separated files are not read)" if len(cells) == 1 and "," in line else ""
            raise DataError(f"{path}:{n}: {len(cells)} tab-separated column(s), expected {want}{hint}; "
                            f"expected {FORMATS}")
        where = f"{path}:{n}"
        row = {"text": cells[0], "text_pair": cells[1] if len(cells) == 3 else "", "label": cells[-1]}
        out.append(example_from_dict(row, lang, where))
    return out


def read_classification(path: str | os.PathLike, *, lang: str = "") -> list[Example]:
    """Pairs from a .jsonl file, a TSV with a header, or a headerless TSV (FORMATS); refused when the file
    holds anything else (the error names the file, the line and the formats accepted)."""
    path = Path(path)
    lines = [(n, line) for n, line in enumerate(read_lines(path), start=1) if line.strip()]
    if not lines:
        raise DataError(f"{path}: no examples (the file is empty); expected {FORMATS}")
    if path.suffix == ".jsonl" or lines[0][1].lstrip().startswith("{"):
        return _jsonl(path, lines, lang)
    if _header(lines[0][1].split("\t")):
        return _named_tsv(path, lines, lang)
    return _plain_tsv(path, lines, lang)


def read_conll(path: str | os.PathLike, *, lang: str = "") -> list[Example]:
    """CoNLL: first column the word, last column the tag; blank lines end sentences; -DOCSTART- skipped."""
    path = Path(path)
    sentences, words, tags, start = [], [], [], 0
    for n, line in enumerate([*read_lines(path), ""], start=1):
        cells = line.split()
        if cells and cells[0] == "-DOCSTART-":
            continue
        if len(cells) == 1:
            raise DataError(f"{path}:{n}: one column ({cells[0]!r}); expected {CONLL_FORMAT}")
        if cells:
            start = start or n
            words.append(cells[0])
            tags.append(cells[-1])
        elif words:
            sentences.append(Example(lang=lang, words=tuple(words), tags=tuple(tags), where=f"{path}:{start}"))
            words, tags, start = [], [], 0
    if not sentences:
        raise DataError(f"{path}: no sentences (the file is empty); expected {CONLL_FORMAT}")
    return sentences


def read_examples(path: str | os.PathLike, task: str, *, lang: str = "") -> list[Example]:
    return read_conll(path, lang=lang) if task == "token" else read_classification(path, lang=lang)


def label_names(examples: Sequence[Example]) -> tuple[str, ...]:
    """Label names in id order: sorted, as `xlmlib finetune` does without --labels."""
    return tuple(sorted({t for e in examples for t in (e.tags or (e.label,))}))


def check_label_set(examples: Sequence[Example], what: str) -> tuple[str, ...]:
    """The sorted label set of training examples, refused when it looks like text rather than labels: more
    distinct labels than half the labelled items (and more than 5), the sign of a text column read as the
    label. Labels given explicitly (--labels, labels=) skip this check."""
    counts = Counter(t for e in examples for t in (e.tags or (e.label,)))
    n = sum(counts.values())
    if len(counts) > max(n / 2, 5):
        sample = ", ".join(repr(name) for name, _ in counts.most_common(3))
        raise DataError(f"{what}: {len(counts)} distinct labels in {n} labelled items (e.g. {sample}): this looks "
                        "like text read as labels; check the file's columns, or give the labels explicitly "
                        "(--labels a,b,c; labels= in Python)")
    return tuple(sorted(counts))


def _token_example(row: dict, lang: str, where: str) -> Example:
    if "words" not in row or "tags" not in row or len(row["words"]) != len(row["tags"]):
        raise DataError(f"{where}: a token example needs 'words' and 'tags' of the same length, got {row}")
    return Example(lang=str(row.get("lang", lang)), words=tuple(row["words"]), tags=tuple(map(str, row["tags"])),
                   where=where)


def to_examples(items, task: str, *, lang: str = "", what: str = "examples") -> list[Example]:
    """Examples from a path (TSV / JSONL / CoNLL), a list of paths, or a list of dicts / Examples."""
    if items is None:
        return []
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            if not Path(item).is_file():
                raise FileNotFoundError(f"{what}: {item}: no such file or directory")
            out += read_examples(item, task, lang=lang)
        elif isinstance(item, Example):
            out.append(item)
        elif isinstance(item, dict):
            where = f"{what}[{i}]"
            out.append(_token_example(item, lang, where) if task == "token" else example_from_dict(item, lang, where))
        else:
            raise TypeError(f"{what}[{i}]: expected a dict, an Example or a file path, got {type(item).__name__}")
    return out
