"""Vocabulary trimming: keep only the pieces a corpus uses, and the rows of the token table that go with them.

XLM-R's token table is 192M of xlm-roberta-base's 278M parameters, and most users need a few languages.
The corpus is tokenized with the model's own tokenizer; the specials and the pieces seen (the `max_pieces`
most frequent, when capped) are kept in their original order, so the new ids are the old ones with gaps
closed. The token table, the tied LM projection and the LM bias are sliced to those rows, in the source's
dtype. Text whose pieces were all kept gets the same ids after the remap and the same outputs.

XLM-R writes a real SentencePiece model of the kept pieces (scores and types kept, xlmlib/vocab/spm.py), which
every SentencePiece reader loads; text that used a dropped piece gets the best segmentation among the kept
pieces (unigram Viterbi), and only characters no kept piece spells become <unk>. XLM writes vocab.json +
merges.txt without the dropped entries and the merges that only lead to them (transformers' XLMTokenizer
reads them); there a dropped piece becomes <unk>.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import hub
from .atomic import atomic_dir, write_json
from .checkpoint.convert import task_class_of
from .checkpoint.load import model_from_checkpoint, read_checkpoint
from .checkpoint.record import Checkpoint
from .checkpoint.save import save_model
from .tokenize import Tokenizer, XLMTokenizer
from .tokenize.bpe import SPECIAL_TOKENS

logger = logging.getLogger(__name__)

# Every tensor whose rows are vocabulary ids (the LM projection is tied to embed.tokens).
VOCAB_TENSORS = ("embed.tokens.weight", "lm_head.bias")
SPECIAL_INDICES = ("pad_index", "bos_index", "eos_index", "unk_index", "mask_index")
REPORT_FILE = "trim.json"
_CHUNK = 2000  # lines per tokenizer call


@dataclasses.dataclass(frozen=True)
class TrimReport:
    """What a trim kept, and the sizes before and after (parameters, and bytes of model.safetensors)."""

    source: str
    vocab_before: int
    vocab_after: int
    params_before: int
    params_after: int
    file_bytes: int
    corpus_tokens: int  # tokens of the corpus with the source tokenizer (framing excluded)
    dropped_rate: float  # share of those tokens whose piece was dropped (with max_pieces)
    corpus_tokens_after: int  # tokens of the corpus with the trimmed tokenizer
    unk_rate: float  # share of those that are <unk>


def special_ids(tok) -> set[int]:
    """Ids that are never trimmed: XLM's 14 Dictionary specials; XLM-R's 4 fairseq specials, <mask> and the
    pieces its SentencePiece model cannot lose (XLMRTokenizer.required_ids)."""
    if isinstance(tok, XLMTokenizer):
        return set(range(len(SPECIAL_TOKENS))) | {tok.mask_id}
    return tok.required_ids()


def count_pieces(tok, corpus: Iterable[str | os.PathLike], *, lang: str | None = None,
                 keep_specials: bool = False) -> np.ndarray:
    """How often each id occurs in the corpus files (one sentence per line), framing tokens excluded; the
    special ids count 0 unless keep_specials (which keeps <unk>'s count; <s> </s> are still dropped)."""
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    kwargs = {} if lang is None else {"lang": lang}
    for path in corpus:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        for start in tqdm(range(0, len(lines), _CHUNK), desc=f"count {Path(path).name}", unit="chunk",
                          disable=None, leave=False):
            rows = tok(lines[start:start + _CHUNK], padding=False, truncation=False, return_tensors=None,
                       **kwargs)["input_ids"]
            flat = np.fromiter((i for row in rows for i in row), dtype=np.int64)
            counts += np.bincount(flat, minlength=tok.vocab_size)
    counts[[tok.bos_id, tok.eos_id]] = 0
    if not keep_specials:
        counts[sorted(special_ids(tok))] = 0
    return counts


def choose_ids(tok, counts: np.ndarray, *, max_pieces: int | None = None, keep: Sequence[str] = ()) -> list[int]:
    """The old ids to keep, ascending: specials, the pieces seen (the max_pieces most frequent, ties broken
    by the lower id), and the pieces named in `keep`."""
    seen = np.flatnonzero(counts > 0)
    if max_pieces is not None:
        if max_pieces < 0:
            raise ValueError(f"max_pieces must be >= 0, got {max_pieces}")
        order = np.lexsort((seen, -counts[seen]))  # by count descending, then id ascending
        seen = seen[order[:max_pieces]]
    extra = []
    for piece in keep:
        i = tok.token_to_id(piece)
        if i == tok.unk_id and piece != "<unk>":
            raise ValueError(f"keep: {piece!r} is not a piece of this vocabulary")
        extra.append(i)
    return sorted(special_ids(tok) | {int(i) for i in seen} | set(extra))


def trim_checkpoint(ckpt: Checkpoint, keep_ids: Sequence[int]) -> Checkpoint:
    """A copy of the checkpoint whose vocabulary is `keep_ids` (old ids, ascending), renumbered 0..n-1."""
    cfg = ckpt.config
    index = torch.as_tensor(list(keep_ids), dtype=torch.long)
    if index.numel() and (index.min() < 0 or index.max() >= cfg.vocab_size or (index.diff() <= 0).any()):
        raise ValueError(f"keep_ids must be increasing ids below the vocabulary size {cfg.vocab_size}")
    new_of = {int(old): new for new, old in enumerate(index.tolist())}
    changes = {"vocab_size": len(new_of)}
    for name in SPECIAL_INDICES:
        old = getattr(cfg, name)
        if old not in new_of:
            raise ValueError(f"{name} {old} is not among the kept ids")
        changes[name] = new_of[old]
    state = {k: (v.index_select(0, index) if k in VOCAB_TENSORS else v) for k, v in ckpt.state.items()}
    return dataclasses.replace(ckpt, config=cfg.replace(**changes), state=state)


def _n_params(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())


def _has_weights(path: Path) -> bool:
    if path.is_file():
        return path.suffix != ".model"
    return (path / "config.json").is_file() or (path / "model.pt").is_file() or any(path.glob("*.pth"))


def trim_vocab(src, dst, corpus: Sequence[str | os.PathLike], max_pieces: int | None = None,
               keep: Sequence[str] = (), *, lang: str | None = None) -> TrimReport:
    """Write to `dst` the model of `src` (with its tokenizer) restricted to the pieces `corpus` uses.

    A source without weights (a tokenizer folder or a SentencePiece .model file) gives a trimmed tokenizer
    alone, the start of a new model (xlmlib-mini's vocabulary was made so). Atomic like convert: everything
    is written to a temporary sibling folder and renamed at the end. `lang` is the language XLM's Moses
    rules use when counting (XLM-R ignores it)."""
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} already exists; choose a new destination")
    missing = [str(p) for p in corpus if not Path(p).is_file()]
    if not corpus or missing:
        raise FileNotFoundError(f"corpus file(s) not found: {', '.join(missing)}" if missing else
                                "trim_vocab needs at least one corpus file (the text whose pieces to keep)")
    path = hub.resolve(src)
    tok = Tokenizer.from_pretrained(path if path.suffix == ".model" else path if path.is_dir() else path.parent)
    ckpt = read_checkpoint(src) if _has_weights(path) else None
    if ckpt is not None and tok.vocab_size != ckpt.config.vocab_size:
        raise ValueError(f"{src}: the tokenizer has {tok.vocab_size} ids but the model {ckpt.config.vocab_size}")
    counts = count_pieces(tok, corpus, lang=lang)
    keep_ids = choose_ids(tok, counts, max_pieces=max_pieces, keep=keep)
    small = tok.trimmed_to(keep_ids)
    after = count_pieces(small, corpus, lang=lang, keep_specials=True)
    total = int(counts.sum())
    report = TrimReport(source=str(src), vocab_before=tok.vocab_size, vocab_after=len(keep_ids), params_before=0,
                        params_after=0, file_bytes=0, corpus_tokens=total,
                        dropped_rate=float(1 - counts[keep_ids].sum() / max(total, 1)),
                        corpus_tokens_after=int(after.sum()),
                        unk_rate=float(after[small.unk_id] / max(int(after.sum()), 1)))
    with atomic_dir(dst) as tmp:
        small.save_pretrained(tmp)
        if ckpt is not None:
            report = _write_model(ckpt, keep_ids, tmp, report)
        write_json(tmp / REPORT_FILE, {**dataclasses.asdict(report), "corpus": [str(p) for p in corpus],
                                       "max_pieces": max_pieces})
    logger.info("trimmed %s -> %s: vocabulary %d -> %d, parameters %d -> %d", src, dst, report.vocab_before,
                report.vocab_after, report.params_before, report.params_after)
    return report


def source_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The dtype a model is stored in: that of its token table (an fp16 model stays fp16)."""
    for name in ("embed.tokens.weight", *state):
        t = state.get(name)
        if t is not None and t.is_floating_point():
            return t.dtype
    return torch.float32


def save_checkpoint(ckpt: Checkpoint, folder: Path) -> None:
    """Write a checkpoint whose tensors were edited as an xlmlib folder, in the dtype it came in."""
    model = model_from_checkpoint(task_class_of(ckpt), ckpt, dtype=source_dtype(ckpt.state),
                                  head_options=ckpt.head_options)
    save_model(model, folder)


def _write_model(ckpt: Checkpoint, keep_ids: Sequence[int], folder: Path, report: TrimReport) -> TrimReport:
    trimmed = trim_checkpoint(ckpt, keep_ids)
    save_checkpoint(trimmed, folder)
    return dataclasses.replace(report, params_before=_n_params(ckpt.state), params_after=_n_params(trimmed.state),
                               file_bytes=(folder / "model.safetensors").stat().st_size)


__all__ = ["TrimReport", "choose_ids", "count_pieces", "save_checkpoint", "source_dtype", "trim_checkpoint", "trim_vocab"]
