"""Vocabulary extension: add the pieces a new corpus needs to an XLM-R model's SentencePiece model and grow its
token table and tied LM head to match (Glot500's recipe: ImaniGooghari et al., ACL 2023).

1. A SentencePiece model of `new_pieces` pieces is trained on the corpus with the model's own settings
   (vocab/spm.py trainer_options: unigram, nmt_nfkc, dummy prefix), and its NORMAL pieces the model lacks are
   the candidates.
2. Scores: a unigram model picks the segmentation with the highest total score, so new scores must sit on
   the old model's scale. The new model's scores are shifted by the median of (old score - new score) over
   the pieces both models have (or by `score_offset`). With `reference` text in the model's old languages,
   every candidate that changes the segmentation of a reference line (one the old vocabulary spells without
   <unk>) is left out, repeatedly, until none does; the offset is lowered step by step until a held-aside half
   of the reference keeps its segmentation too (calibrate): that is how old languages keep theirs.
3. The SentencePiece model gets the kept candidates appended (old ids unchanged); the token table and the
   tied LM head (embedding rows and lm_head.bias) grow by one row per new piece, FVT or random (vocab/fvt.py);
   <mask> (its row and bias) moves to the new last id, len(pieces) + 1, where transformers puts it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from .. import hub
from ..atomic import atomic_dir, write_json
from ..checkpoint.load import read_checkpoint
from ..checkpoint.record import Checkpoint
from ..tokenize import Tokenizer, XLMRTokenizer
from ..trim import VOCAB_TENSORS, save_checkpoint
from . import fvt, spm

logger = logging.getLogger(__name__)

REPORT_FILE = "extend.json"
INITS = ("fvt", "random")


@dataclasses.dataclass(frozen=True)
class ExtendReport:
    """What an extension did: sizes, how the new pieces were chosen and scored, and how rows were made."""

    source: str
    vocab_before: int
    vocab_after: int
    trained_pieces: int  # NORMAL pieces of the SentencePiece model trained on the corpus
    missing_pieces: int  # of those, the pieces the model lacked
    added_pieces: int  # of those, the pieces added (missing minus those left out for the reference text)
    left_out: int  # missing pieces that changed the segmentation of a reference line
    score_offset: float  # added to the new model's scores (the median over shared pieces, lowered by calibration)
    reference_lines: int
    check_unchanged: float | None  # share of the check half of the reference segmented as before (calibration)
    reference_unchanged: float | None  # share of all reference lines (with <unk> too) segmented as before
    init: str
    unk_only_rows: int  # fvt: new pieces whose old split is <unk> alone (they start as the <unk> row)
    mask_before: int
    mask_after: int


def read_lines(paths: Sequence[str | os.PathLike], what: str) -> list[str]:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{what} file(s) not found: {', '.join(missing)}")
    return [line for p in paths for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip()]


def candidates(tok: XLMRTokenizer, lines: Sequence[str], new_pieces: int, *,
               character_coverage: float = 0.9995) -> tuple[int, list[tuple[str, float]], float]:
    """(pieces trained, the missing pieces with their new-model scores, the median score offset)."""
    old = tok.model_proto()
    have = {p.piece: p.score for p in old.pieces if p.type == spm.NORMAL}
    trained = [p for p in spm.train_like(old, lines, new_pieces, character_coverage=character_coverage).pieces
               if p.type == spm.NORMAL]
    shared = [have[p.piece] - p.score for p in trained if p.piece in have]
    offset = statistics.median(shared) if shared else min(have.values()) - max(p.score for p in trained)
    every = {p.piece for p in old.pieces}
    return len(trained), [(p.piece, p.score) for p in trained if p.piece not in every], float(offset)


def keep_stable(tok: XLMRTokenizer, scored: list[tuple[str, float]], reference: Sequence[str],
                max_rounds: int = 10) -> tuple[list[tuple[str, float]], XLMRTokenizer]:
    """Leave out the new pieces that change the segmentation of reference lines the old model spells without
    <unk>, until no such line changes (or max_rounds); returns the kept pieces and the extended tokenizer."""
    before = [(line, ids) for line, ids in zip(reference, tok.sp.encode(list(reference))) if 0 not in ids]
    n_old = tok.sp.get_piece_size()
    kept = list(scored)
    for _ in range(max_rounds):
        big = tok.extended_with(kept)
        bad = set()
        for line, ids in before:
            after = big.sp.encode(line)
            if after != ids:
                bad.update(big.sp.id_to_piece(i) for i in after if i >= n_old)
        if not bad:
            return kept, big
        kept = [(p, s) for p, s in kept if p not in bad]
    return kept, tok.extended_with(kept)


def unchanged_share(tok: XLMRTokenizer, big: XLMRTokenizer, lines: Sequence[str], *,
                    spelled_only: bool = False) -> float:
    """Share of `lines` whose ids are the same under `big` as under `tok` (spelled_only: among the lines the
    old model spells without <unk>; text it could not spell may change for the better)."""
    old = tok.sp.encode(list(lines))
    pairs = [(line, ids) for line, ids in zip(lines, old) if not spelled_only or 0 not in ids]
    return sum(big.sp.encode(line) == ids for line, ids in pairs) / max(len(pairs), 1)


def calibrate(tok: XLMRTokenizer, missing: list[tuple[str, float]], offset: float, reference: Sequence[str], *,
              target: float = 0.995, step: float = 1.0, max_steps: int = 12):
    """(kept pieces with their scores, the extended tokenizer, the final offset, the share unchanged on the
    check half).

    Pieces that change the even reference lines are left out (keep_stable); if fewer than `target` of the odd
    lines (those spelled without <unk>) keep their segmentation, every score is lowered by `step` and the
    search repeats: what was left out generalises to unseen text only so far, and lower scores make a new
    piece win only where the old split of its text costs more. The final set is fitted on all lines."""
    fit, check = reference[0::2], reference[1::2]
    for k in range(max_steps + 1):
        scored = [(p, s + offset - k * step) for p, s in missing]
        share = unchanged_share(tok, keep_stable(tok, scored, fit)[1], check, spelled_only=True)
        if share >= target:
            break
    return *keep_stable(tok, scored, reference), offset - k * step, share


def grow_checkpoint(ckpt: Checkpoint, rows: torch.Tensor, bias: torch.Tensor | None) -> Checkpoint:
    """The checkpoint with `rows` (and LM `bias` entries) inserted before <mask>, which moves to the new last
    id; every other id keeps its row."""
    cfg = ckpt.config
    if cfg.mask_index != cfg.vocab_size - 1:
        raise ValueError(f"{ckpt.source}: <mask> is id {cfg.mask_index}, not the last id {cfg.vocab_size - 1}; "
                         "extend_vocab needs XLM-R's layout")
    state = dict(ckpt.state)
    state["embed.tokens.weight"] = fvt.insert_before_last(state["embed.tokens.weight"], rows)
    if "lm_head.bias" in state:
        state["lm_head.bias"] = fvt.insert_before_last(state["lm_head.bias"], bias)
    n = cfg.vocab_size + rows.shape[0]
    return dataclasses.replace(ckpt, config=cfg.replace(vocab_size=n, mask_index=n - 1), state=state)


def new_rows(ckpt: Checkpoint, tok: XLMRTokenizer, pieces: Sequence[str], init: str, seed: int):
    """(embedding rows, LM bias entries or None, how many FVT splits were <unk> alone) for `pieces`."""
    table = ckpt.state["embed.tokens.weight"]
    has_bias = "lm_head.bias" in ckpt.state
    if init == "random":
        rows = fvt.random_rows(len(pieces), table.shape[1], ckpt.config.init_std, seed)
        return rows, torch.zeros(len(pieces)) if has_bias else None, 0
    splits = fvt.old_splits(tok, pieces)
    bias = fvt.fvt_rows(ckpt.state["lm_head.bias"], splits) if has_bias else None
    unk_only = sum(set(ids) == {tok.unk_id} for ids in splits)
    return fvt.fvt_rows(table, splits), bias, unk_only


def _load(src) -> tuple[XLMRTokenizer, Checkpoint | None]:
    path = hub.resolve(src)
    tok = Tokenizer.from_pretrained(path if path.suffix == ".model" or path.is_dir() else path.parent)
    if tok.space_marker != XLMRTokenizer.space_marker:  # XLM's BPE marks word ends with </w>
        raise ValueError(f"{src}: extend_vocab works on SentencePiece (XLM-R) vocabularies; this one is XLM's BPE")
    has_weights = path.is_dir() and (path / "config.json").is_file() or path.is_file() and path.suffix != ".model"
    ckpt = read_checkpoint(src) if has_weights else None
    if ckpt is not None and tok.vocab_size != ckpt.config.vocab_size:
        raise ValueError(f"{src}: the tokenizer has {tok.vocab_size} ids but the model {ckpt.config.vocab_size}")
    return tok, ckpt


def extend_vocab(src, dst, corpus: Sequence[str | os.PathLike], new_pieces: int = 8000, init: str = "fvt", *,
                 reference: Sequence[str | os.PathLike] = (), keep_unchanged: float = 0.995,
                 score_offset: float | None = None, seed: int = 0, character_coverage: float = 0.9995) -> ExtendReport:
    """Write to `dst` the model of `src` (an XLM-R folder, or a SentencePiece tokenizer alone) with the pieces
    a `new_pieces`-piece SentencePiece model of `corpus` has and it lacks. `reference`: text in the model's old
    languages whose segmentation must not change; `keep_unchanged`: the share of its check half that must keep
    it (calibrate). `score_offset` fixes the offset instead of searching it. `init`: "fvt" or "random" rows
    (seeded by `seed`). Atomic: nothing is left at `dst` on failure. The record goes to dst/extend.json."""
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} already exists; choose a new destination")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if not corpus:
        raise ValueError("extend_vocab needs at least one corpus file (the text whose pieces to add)")
    lines, ref = read_lines(corpus, "corpus"), read_lines(reference, "reference")
    tok, ckpt = _load(src)
    trained, missing, offset = candidates(tok, lines, new_pieces, character_coverage=character_coverage)
    offset = offset if score_offset is None else float(score_offset)
    scored, check, unchanged = [(p, s + offset) for p, s in missing], None, None
    if ref:
        scored, big, offset, check = calibrate(tok, missing, offset, ref, target=keep_unchanged,
                                               max_steps=0 if score_offset is not None else 12)
        unchanged = unchanged_share(tok, big, ref)
    else:
        warnings.warn("extend_vocab: no reference text, so old-language segmentation was not checked", stacklevel=2)
        big = tok.extended_with(scored)
    if not scored:
        raise ValueError(f"nothing to add: the {trained}-piece model of the corpus has {len(missing)} pieces "
                         f"{src} lacks, and none keeps the reference text's segmentation")
    report = ExtendReport(
        source=str(src), vocab_before=tok.vocab_size, vocab_after=big.vocab_size, trained_pieces=trained,
        missing_pieces=len(missing), added_pieces=len(scored), left_out=len(missing) - len(scored),
        score_offset=offset, reference_lines=len(ref), check_unchanged=check, reference_unchanged=unchanged,
        init=init, unk_only_rows=0, mask_before=tok.mask_id, mask_after=big.mask_id)
    with atomic_dir(dst) as tmp:
        big.save_pretrained(tmp)
        if ckpt is not None:
            rows, bias, unk_only = new_rows(ckpt, tok, [p for p, _ in scored], init, seed)
            save_checkpoint(grow_checkpoint(ckpt, rows, bias), tmp)
            report = dataclasses.replace(report, unk_only_rows=unk_only)
        write_json(tmp / REPORT_FILE, {**dataclasses.asdict(report), "corpus": [str(p) for p in corpus],
                                       "reference": [str(p) for p in reference], "new_pieces": new_pieces,
                                       "seed": seed, "vocab_tensors": list(VOCAB_TENSORS)})
    logger.info("extended %s -> %s: vocabulary %d -> %d (%d pieces added, %d left out)", src, dst,
                report.vocab_before, report.vocab_after, report.added_pieces, report.left_out)
    return report


__all__ = ["ExtendReport", "calibrate", "candidates", "extend_vocab", "grow_checkpoint", "keep_stable", "new_rows",
           "unchanged_share"]
