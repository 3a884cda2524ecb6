"""Entity metrics (xlmlib.evaluation.entities) against an independent reading of seqeval 1.2's rules written here
(shared/reference/cross-lingual-tasks.md section 6), on generated tag sequences, well- and ill-formed, in both modes
and every scheme; plus hand-worked cases and the errors. The module and this reading were also both compared with
seqeval 1.2.2 itself on 2,400 generated batches (a one-off script, /work/drafts/eval-seqeval-check.py): equal,
except that seqeval's default mode does not know BILOU's letters (see the module docstring)."""

import random

import pytest

from xlmlib.evaluation.entities import entities, entity_metrics

SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU")
LETTERS = {"IOB1": "IB", "IOB2": "IB", "IOBES": "IBES", "BILOU": "IBLU"}
TYPES = ("PER", "LOC", "MISC-X")  # a type may itself hold the delimiter


# -- the independent reading -----------------------------------------------------------------------------------
def _split(tag):
    return ("O", None) if tag == "O" else (tag[0], tag[2:])


def lenient_reading(tags):
    """seqeval's default mode as the reference words it: a chunk starts at B, at S, at an I/E after O or after an
    E/S, or on a type change; it ends before B/S/O, after E/S, or on a type change. BILOU's L/U read as E/S."""
    seq = [_split(t) for t in tags]
    seq = [({"L": "E", "U": "S"}.get(l, l), t) for l, t in seq]
    n = len(seq)
    prev = [("O", None)] + seq[:-1]
    nxt = seq[1:] + [("O", None)]
    starts = [l != "O" and (l in "BS" or (l in "IE" and p in "OES") or t != pt)
              for (l, t), (p, pt) in zip(seq, prev)]
    last = [l != "O" and (l in "ES" or q in "BSO" or t != qt) for (l, t), (q, qt) in zip(seq, nxt)]
    out = []
    for i in range(n):
        if starts[i]:
            j = next(j for j in range(i, n) if last[j])
            out.append((seq[i][1], i, j))
    return out


def strict_reading(tags, scheme):
    seq = [_split(t) for t in tags]
    if scheme == "IOB1":
        return _strict_iob1(seq)
    single, end = {"IOB2": (None, None), "IOBES": ("S", "E"), "BILOU": ("U", "L")}[scheme]
    out = []
    for i, (l, t) in enumerate(seq):
        if l == single:
            out.append((t, i, i))
        elif l == "B":  # B, then the I of its type; IOB2 stops there, IOBES/BILOU need the closing E/L next
            j = i
            while j + 1 < len(seq) and seq[j + 1] == ("I", t):
                j += 1
            if end is None:
                out.append((t, i, j))
            elif j + 1 < len(seq) and seq[j + 1] == (end, t):
                out.append((t, i, j + 1))
    return out


def _strict_iob1(seq):
    """IOB1 as seqeval's strict mode reads it: I-X opens after O, after any B, or after an I of another type; B-X
    opens only right after X (B or I); the I-X that follow continue it; it is kept unless a B of another type
    follows a lone B."""
    out, i, prev = [], 0, ("O", None)
    while i < len(seq):
        l, t = seq[i]
        opens = (l == "I" and (prev[0] in "OB" or prev[1] != t)) or (l == "B" and prev[0] in "IB" and prev[1] == t)
        if not opens:
            prev, i = seq[i], i + 1
            continue
        j = i
        while j + 1 < len(seq) and seq[j + 1] == ("I", t):
            j += 1
        after = seq[j + 1] if j + 1 < len(seq) else ("O", None)
        if not (seq[j][0] == "B" and after[0] == "B" and after[1] != t):
            out.append((t, i, j))
        prev, i = seq[j], j + 1
    return out


def metrics_reading(gold, pred, read):
    g = [(s, *e) for s, tags in enumerate(gold) for e in read(tags)]
    p = [(s, *e) for s, tags in enumerate(pred) for e in read(tags)]
    hits = [e for e in p if e in g]

    def prf(nh, np_, ng):
        pr, rc = (nh / np_ if np_ else 0.0), (nh / ng if ng else 0.0)
        return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc else 0.0)

    types = sorted({e[1] for e in g + p})
    per = {t: prf(sum(e[1] == t for e in hits), sum(e[1] == t for e in p), sum(e[1] == t for e in g)) for t in types}
    return prf(len(hits), len(p), len(g)), per


# -- generated sequences ---------------------------------------------------------------------------------------
def _random_tags(rng, letters, n):
    vocab = ["O"] + [f"{l}-{t}" for l in letters for t in TYPES]
    return [rng.choice(vocab) for _ in range(n)]


def _encode(spans, n, scheme):
    """Well-formed tags of entity spans [(type, i, j)] in a sentence of n words."""
    tags = ["O"] * n
    for t, i, j in spans:
        if scheme in ("IOBES", "BILOU") and i == j:
            tags[i] = ("S-" if scheme == "IOBES" else "U-") + t
            continue
        follows = any(t2 == t and j2 == i - 1 for t2, _, j2 in spans)
        first = "B" if scheme != "IOB1" or follows else "I"
        tags[i:j + 1] = [f"{first}-{t}"] + [f"I-{t}"] * (j - i)
        if scheme in ("IOBES", "BILOU"):
            tags[j] = ("E-" if scheme == "IOBES" else "L-") + t
    return tags


def _random_spans(rng, n):
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.5:
            j = min(n - 1, i + rng.randrange(3))
            spans.append((rng.choice(TYPES), i, j))
            i = j + 1
        else:
            i += 1
    return spans


@pytest.mark.parametrize("scheme", SCHEMES)
def test_well_formed_tags_decode_to_their_entities_in_both_modes(scheme):
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randrange(12)
        spans = _random_spans(rng, n)
        tags = _encode(spans, n, scheme)
        assert entities(tags, scheme=scheme, strict=True) == spans, tags
        assert entities(tags, scheme=scheme) == spans, tags


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("strict", [False, True])
def test_random_tags_match_the_reading(scheme, strict):
    """Mostly ill-formed: every tag drawn at random from the scheme's letters (lenient mode: from all letters)."""
    rng = random.Random(2 * SCHEMES.index(scheme) + strict)
    letters = LETTERS[scheme] if strict else "IBESLU"
    read = (lambda tags: strict_reading(tags, scheme)) if strict else lenient_reading
    for _ in range(200):
        lengths = [rng.randrange(10) for _ in range(4)]
        gold = [_random_tags(rng, letters, n) for n in lengths]
        # predicted: the gold tags with some changed (so that some entities match), or wholly random
        pred = [[t if rng.random() < 0.7 else rng.choice(_random_tags(rng, letters, 1) + ["O"]) for t in g]
                for g in gold]
        for tags in gold + pred:
            assert entities(tags, scheme=scheme, strict=strict) == read(tags), tags
        got = entity_metrics(gold, pred, scheme=scheme, strict=strict)
        (p, r, f), per = metrics_reading(gold, pred, read)
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f), abs=1e-12)
        assert {t: (v["precision"], v["recall"], v["f1"]) for t, v in got["per_type"].items()} == pytest.approx(per)


def test_generated_sequences_hit_the_interesting_cases():
    """The generator above reaches what separates the modes (else the comparison could not fail on them)."""
    rng = random.Random(0)
    seqs = [_random_tags(rng, "IB", 8) for _ in range(200)]
    assert any(entities(s) != entities(s, strict=True) for s in seqs)
    assert any(entities(s, scheme="IOB1", strict=True) != entities(s, scheme="IOB2", strict=True) for s in seqs)


# -- hand-worked -----------------------------------------------------------------------------------------------
def test_hand_worked_chunks():
    # O I-PER I-PER: lenient, I after O opens, I of the same type continues: one PER over 1..2.
    # Strict IOB2: only B opens; a lone I belongs to no entity.
    assert entities(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]
    assert entities(["O", "I-PER", "I-PER"], strict=True) == []
    # B-PER I-LOC: the type changes, so PER ends at 0 and LOC opens at 1 (lenient); strict IOB2 keeps B-PER (it is
    # closed properly by an I of another type) and the I-LOC, which no B opened, is nothing.
    assert entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]
    assert entities(["B-PER", "I-LOC"], strict=True) == [("PER", 0, 0)]
    # IOBES B-PER I-PER with no E: lenient, one PER 0..1; strict, the run is never closed by E: nothing.
    assert entities(["B-PER", "I-PER"], scheme="IOBES") == [("PER", 0, 1)]
    assert entities(["B-PER", "I-PER"], scheme="IOBES", strict=True) == []
    # IOBES S-LOC E-LOC: S is a whole entity; lenient, an E after S opens another; strict, E never opens.
    assert entities(["S-LOC", "E-LOC"], scheme="IOBES") == [("LOC", 0, 0), ("LOC", 1, 1)]
    assert entities(["S-LOC", "E-LOC"], scheme="IOBES", strict=True) == [("LOC", 0, 0)]
    # BILOU U-PER U-PER: two single-word entities in both modes (U read as S when lenient).
    assert entities(["U-PER", "U-PER"], scheme="BILOU") == [("PER", 0, 0), ("PER", 1, 1)]
    assert entities(["U-PER", "U-PER"], scheme="BILOU", strict=True) == [("PER", 0, 0), ("PER", 1, 1)]
    # IOB1 I-PER B-PER I-PER: B separates two adjacent PER entities, 0..0 and 1..2, in both modes.
    assert entities(["I-PER", "B-PER", "I-PER"], scheme="IOB1", strict=True) == [("PER", 0, 0), ("PER", 1, 2)]
    assert entities(["I-PER", "B-PER", "I-PER"], scheme="IOB1") == [("PER", 0, 0), ("PER", 1, 2)]
    # IOB1 strict B-PER I-PER at the start: B may only follow a PER, so it opens nothing; the I after a B opens.
    assert entities(["B-PER", "I-PER"], scheme="IOB1", strict=True) == [("PER", 1, 1)]


def test_hand_worked_metrics():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG"]]
    # gold: PER 0..1, LOC 3..3 (sentence 0), ORG 0..0 (sentence 1); predicted: PER 0..1, ORG 3..3, ORG 0..1.
    # Only PER matches (the second ORG has the wrong end): precision 1/3, recall 1/3, F1 1/3.
    got = entity_metrics(gold, pred)
    assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3, 3))
    assert got["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},  # nothing predicted: 0 by convention
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},  # 2 predicted, none right
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}
    # No entity anywhere: every figure 0, no types.
    assert entity_metrics([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                                "per_type": {}}


# -- errors ----------------------------------------------------------------------------------------------------
def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        entity_metrics([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        entity_metrics([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="unknown tagging scheme 'IOE3'"):
        entity_metrics([["O"]], [["O"]], scheme="IOE3")
    with pytest.raises(ValueError, match=r"predicted sentence 0, tag 1: malformed tag 'B_PER'"):
        entity_metrics([["O", "O"]], [["O", "B_PER"]])
    with pytest.raises(ValueError, match=r"gold sentence 0, tag 0: malformed tag 'E-PER'.*scheme IOB2 \(strict\)"):
        entity_metrics([["E-PER"]], [["O"]], strict=True)
    assert entity_metrics([["E-PER"]], [["S-PER"]])["f1"] == 1.0  # lenient mode reads every scheme's letters
    with pytest.raises(TypeError, match=r"pass \[tags\] for one sentence"):
        entity_metrics(["B-PER", "O"], ["B-PER", "O"])
    with pytest.raises(ValueError, match="malformed tag 'b-per'"):
        entities(["b-per"])
    assert entities(["B-PER"], scheme="iob2") == [("PER", 0, 0)]  # scheme names are case-blind
