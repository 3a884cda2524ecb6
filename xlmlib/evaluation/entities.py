"""Entity-level scores of a tagger (the CoNLL / seqeval convention): entities decoded from IOB1, IOB2, IOBES or
BILOU tag sequences, then precision / recall / F1 micro-averaged over all entities, overall and per type.

Facts: shared/reference/cross-lingual-tasks.md section 6, i.e. seqeval 1.2's two ways of reading tags.
- Lenient (strict=False, seqeval's default): the scheme does not change the entities. One entity starts at B or S,
  at an I or E after O, E or S, and wherever the type changes; it ends before B, S or O, after E or S, and where
  the type changes. So `O I-PER I-PER` is one PER entity in every scheme. seqeval's default mode only knows the
  letters B I E S; BILOU's L and U are read here as E and S (seqeval would warn and, e.g., join `U-PER U-PER`).
- Strict (strict=True, seqeval's mode="strict"): each scheme has its own rules of which (previous, current) tag
  pairs start an entity, continue it, and close it; a run that starts but does not close properly is no entity.
  With IOB2 an entity starts only at B-X and takes the I-X that follow; a lone I-X belongs to none.
An entity counts as found only when its type and both boundaries match a gold entity of the same sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

Chunk = tuple[str, int, int]  # (type, first tag, last tag): the last index is inclusive, as seqeval's get_entities

_TAG = re.compile(r"([A-Z])-(.+)", re.DOTALL)
_OUTSIDE = ("O", None)  # (letter, type) of an O tag, and of the sentinel after the last tag
# Lenient mode reads BILOU's letters as IOBES's: L closes an entity like E, U stands alone like S.
_LENIENT = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}


@dataclass(frozen=True)
class _Rules:
    """One scheme's strict rules, each a set of (previous letter, current letter, type relation) where "*" is any
    letter and the relation is "=" (same type), "~" (different type) or "*" (either). seqeval 1.2, scheme.py."""

    letters: str
    start: tuple[str, ...]  # the current tag opens an entity
    inside: tuple[str, ...]  # the current tag continues the entity that the previous one is part of
    end: tuple[str, ...]  # the entity that the previous tag is part of is properly closed before the current tag


SCHEMES = {
    # IOB1: I-X begins an entity unless it follows X; B-X only between two adjacent entities of type X.
    "IOB1": _Rules("IOB", start=("OI*", "II~", "BI*", "IB=", "BB="), inside=("BI=", "II="),
                   end=("II~", "IO*", "IB*", "BO*", "BI~", "BB=")),
    "IOB2": _Rules("IOB", start=("*B*",), inside=("BI=", "II="), end=("IO*", "II~", "IB*", "BO*", "BI~", "BB*")),
    "IOBES": _Rules("IOBES", start=("*B*", "*S*"), inside=("BI=", "BE=", "II=", "IE="), end=("S**", "E**")),
    "BILOU": _Rules("BILOU", start=("*B*", "*U*"), inside=("BI=", "BL=", "II=", "IL="), end=("U**", "L**")),
}


def _scheme(name: str) -> str:
    key = str(name).upper()
    if key not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {name!r}; known: {', '.join(SCHEMES)}")
    return key


def _parse(tags: Sequence[str], scheme: str, strict: bool, where: str) -> list[tuple[str, str | None]]:
    """(letter, type) of every tag; a malformed tag, or one whose letter the scheme lacks (strict), is an error."""
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        raise TypeError(f"{where}: expected a sequence of tags, got {type(tags).__name__}")
    allowed = SCHEMES[scheme].letters if strict else "".join(_LENIENT)
    out = []
    for k, tag in enumerate(tags):
        if tag == "O":
            out.append(_OUTSIDE)
            continue
        m = _TAG.fullmatch(tag) if isinstance(tag, str) else None
        if m is None or m.group(1) not in allowed:
            mode = f"scheme {scheme} (strict)" if strict else "lenient mode"
            raise ValueError(f"{where}, tag {k}: malformed tag {tag!r}; expected 'O' or PREFIX-TYPE with a prefix "
                             f"among {', '.join(allowed)} for {mode}, such as 'B-PER'")
        out.append((m.group(1), m.group(2)))
    return out


def _lenient_chunks(parsed) -> list[Chunk]:
    chunks, begin = [], None
    prev, prev_type = "O", None
    for i, (letter, kind) in enumerate([*parsed, _OUTSIDE]):
        letter = _LENIENT.get(letter, letter)
        changed = kind != prev_type
        closes = prev in "ES" or (prev in "BI" and letter in "BSO") or (prev != "O" and changed)
        if begin is not None and closes:
            chunks.append((prev_type, begin, i - 1))
            begin = None
        if letter in "BS" or (letter in "IE" and prev in "OES") or (letter != "O" and changed):
            begin = i
        prev, prev_type = letter, kind
    return chunks


def _matches(rules: tuple[str, ...], prev: tuple[str, str | None], cur: tuple[str, str | None]) -> bool:
    same = prev[1] == cur[1]
    return any(p in ("*", prev[0]) and c in ("*", cur[0]) and (relation == "*" or (relation == "=") == same)
               for p, c, relation in rules)


def _strict_chunks(parsed, rules: _Rules) -> list[Chunk]:
    """Walk the tags: where one opens an entity, follow the tags that continue it, and keep the run when the tag
    after it closes it properly (seqeval's Tokens.entities). A run is consumed whether or not it is kept."""
    seq = [*parsed, _OUTSIDE]  # the sentinel O closes what is open at the end
    chunks, i, prev = [], 0, _OUTSIDE
    while i < len(seq):
        if _matches(rules.start, prev, seq[i]):
            j = i + 1
            while _matches(rules.inside, seq[j - 1], seq[j]):  # the sentinel never continues: j stays in range
                j += 1
            if _matches(rules.end, seq[j - 1], seq[j]):
                chunks.append((seq[i][1], i, j - 1))
            i = j
        else:
            i += 1
        prev = seq[i - 1]
    return chunks


def entities(tags: Sequence[str], *, scheme: str = "IOB2", strict: bool = False, where: str = "tags") -> list[Chunk]:
    """The entities of one tag sequence as (type, first, last) with `last` inclusive, in order.
    `where` names the sequence in error messages."""
    scheme = _scheme(scheme)
    parsed = _parse(tags, scheme, strict, where)
    return _strict_chunks(parsed, SCHEMES[scheme]) if strict else _lenient_chunks(parsed)


def is_entity_tagset(labels: Sequence[str]) -> bool:
    """Whether labels are entity tags (O, B-PER, I-LOC, ...) that chunk into entities, rather than labels of
    another kind (part-of-speech tags), which are scored by token accuracy instead."""
    try:
        entities(list(labels))
    except ValueError:
        return False
    return True


def _prf(found: int, predicted: int, gold: int) -> dict:
    """Precision, recall, F1 as fractions; 0.0 where a denominator is 0 (seqeval's zero_division=0)."""
    precision = found / predicted if predicted else 0.0
    recall = found / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _sentences(seqs, what: str) -> list:
    if isinstance(seqs, str) or not isinstance(seqs, Sequence):
        raise TypeError(f"{what}: expected a list of tag sequences, got {type(seqs).__name__}")
    if seqs and isinstance(seqs[0], str):
        raise TypeError(f"{what}: a list of tags, not of tag sequences; pass [tags] for one sentence")
    return list(seqs)


def entity_metrics(gold, predicted, *, scheme: str = "IOB2", strict: bool = False) -> dict:
    """Entity precision, recall and F1 (fractions) of `predicted` against `gold`, both lists of tag sequences,
    one per sentence: {"precision", "recall", "f1", "support" (gold entities), "per_type": {type: {"precision",
    "recall", "f1", "support"}}}; per_type lists every type that gold or predicted has, sorted."""
    gold, predicted = _sentences(gold, "gold"), _sentences(predicted, "predicted")
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    scheme = _scheme(scheme)
    true, pred = set(), set()
    for s, (g, p) in enumerate(zip(gold, predicted)):
        true.update((s, *e) for e in entities(g, scheme=scheme, strict=strict, where=f"gold sentence {s}"))
        pred.update((s, *e) for e in entities(p, scheme=scheme, strict=strict, where=f"predicted sentence {s}"))
        if len(g) != len(p):  # after entities(), which has checked that both are sequences
            raise ValueError(f"sentence {s}: {len(g)} gold tags but {len(p)} predicted")
    n_true, n_pred = Counter(e[1] for e in true), Counter(e[1] for e in pred)
    n_found = Counter(e[1] for e in true & pred)
    per_type = {kind: {**_prf(n_found[kind], n_pred[kind], n_true[kind]), "support": n_true[kind]}
                for kind in sorted(n_true.keys() | n_pred.keys())}
    return {**_prf(len(true & pred), len(pred), len(true)), "support": len(true), "per_type": per_type}


__all__ = ["SCHEMES", "entities", "entity_metrics"]
