"""Data for translation training (shared/reference/xlm-mt.md section 4): framed sentences, the original's
denoising noise, lambda schedules, and the batch source of the step schedule (ae, mt, bt steps in turn).

Every batch is a pure function of (seed, step), as in the pretraining sources, so --resume replays the
same batches and noise. A batch is one step of one kind; its rows carry the kind ("task": 0 = ae/mt,
1 = bt), the loss weight (the lambda of that iteration) and, for bt, the language to back-translate into.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..family import family_of
from ..losses import IGNORE_INDEX
from ..train.sources import step_generator

logger = logging.getLogger(__name__)

TASK_MT, TASK_BT = 0, 1


class Lambda:
    """A loss coefficient: "x" constant, or "it:val,it:val,..." piecewise linear in the iteration, the last
    value held (the original's lambda_{ae,mt,bt} format, e.g. "0:1,100000:0.1,300000:0")."""

    def __init__(self, spec: str | float):
        text = str(spec).strip()
        try:
            if ":" not in text:
                self.points = [(0, float(text))]
            else:
                self.points = [(int(i), float(v)) for i, v in (p.split(":") for p in text.split(","))]
        except ValueError:
            raise ValueError(f"lambda {spec!r}: expected a number or 'iteration:value,iteration:value,...'") from None
        its = [i for i, _ in self.points]
        if its[0] != 0 or its != sorted(set(its)):
            raise ValueError(f"lambda {spec!r}: iterations must start at 0 and increase")

    def __call__(self, iteration: int) -> float:
        for (i0, v0), (i1, v1) in zip(self.points, self.points[1:]):
            if i0 <= iteration < i1:
                return v0 + (v1 - v0) * (iteration - i0) / (i1 - i0)
        return self.points[-1][1]

    @property
    def always_zero(self) -> bool:
        return all(v == 0 for _, v in self.points)


@dataclass(frozen=True)
class Noise:
    """The original's add_noise, in this order: shuffle (each word moves < word_shuffle places; 0 = off),
    dropout (drop each word with probability word_dropout, keep one random word if none is left), blank
    (replace each word by the mask id with probability word_blank). The framing </s> never move."""

    word_shuffle: float = 3.0
    word_dropout: float = 0.1
    word_blank: float = 0.1

    def __post_init__(self):
        if self.word_shuffle != 0 and self.word_shuffle <= 1:
            raise ValueError(f"word_shuffle must be 0 (off) or > 1, got {self.word_shuffle}")
        for name in ("word_dropout", "word_blank"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def __call__(self, words: list[int], mask_id: int, g: torch.Generator) -> list[int]:
        words = list(words)
        if self.word_shuffle and len(words) > 1:
            scores = torch.arange(len(words), dtype=torch.float64) + torch.rand(len(words), generator=g,
                                                                                dtype=torch.float64) * self.word_shuffle
            words = [words[i] for i in scores.argsort().tolist()]
        if self.word_dropout and words:
            keep = (torch.rand(len(words), generator=g) >= self.word_dropout).tolist()
            kept = [w for w, k in zip(words, keep) if k]
            words = kept or [words[int(torch.randint(len(words), (1,), generator=g))]]
        if self.word_blank and words:
            blank = (torch.rand(len(words), generator=g) < self.word_blank).tolist()
            words = [mask_id if b else w for w, b in zip(words, blank)]
        return words


def frame_rows(rows: list[list[int]], cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row framed as the family frames its data (XLM: `</s> w1 ... wn </s>`), right-padded:
    (ids B T, mask B T)."""
    framing, pad = family_of(cfg).framing(cfg), cfg.pad_index
    width = max(len(r) for r in rows) + framing.n_special()
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        framed = framing.frame(r)
        ids[i, :len(framed)] = torch.tensor(framed)
    return ids, ids != pad


def target_labels(ids: torch.Tensor, pad: int) -> torch.Tensor:
    """Labels aligned with the decoder input: the first </s> is never predicted, pads are ignored."""
    labels = ids.masked_fill(ids == pad, IGNORE_INDEX)
    labels[:, 0] = IGNORE_INDEX
    return labels


@dataclass(frozen=True)
class Step:
    kind: str  # "ae", "mt" or "bt"
    src: str   # ae: the language; mt: source; bt: the monolingual language (reconstructed)
    tgt: str   # ae: the same; mt: target; bt: the language back-translated into


def parse_steps(ae=(), mt=(), bt=()) -> list[Step]:
    """ae ("de"), mt ("de-en"), bt ("de-en-de": monolingual de, translated into en, back to de)."""
    steps = [Step("ae", lg, lg) for lg in ae]
    for spec in mt:
        parts = spec.split("-")
        if len(parts) != 2 or parts[0] == parts[1]:
            raise ValueError(f"mt step {spec!r}: expected SRC-TGT with two different languages, e.g. de-en")
        steps.append(Step("mt", *parts))
    for spec in bt:
        parts = spec.split("-")
        if len(parts) != 3 or parts[0] != parts[2] or parts[0] == parts[1]:
            raise ValueError(f"bt step {spec!r}: expected L1-L2-L1, e.g. de-en-de")
        steps.append(Step("bt", parts[0], parts[1]))
    if not steps:
        raise ValueError("no training steps: give at least one of mt_steps, ae_steps, bt_steps")
    return steps


class MTSource:
    """Step k runs steps[k % n] of the schedule at iteration k // n (each step its own update, as the
    original's EncDecTrainer); lambdas are read at that iteration."""

    def __init__(self, steps: list[Step], *, mono: dict[str, list[list[int]]], para: dict[tuple[str, str], list],
                 cfg: ModelConfig, lang_ids: dict[str, int], lambdas: dict[str, Lambda], noise: Noise,
                 batch_size: int, seed: int = 0):
        self.steps, self.mono, self.para, self.cfg = steps, mono, para, cfg
        self.lang_ids, self.lambdas, self.noise = lang_ids, lambdas, noise
        self.batch_size, self.seed = batch_size, seed
        for step in steps:
            pool = self.para.get((step.src, step.tgt)) if step.kind == "mt" else self.mono.get(step.src)
            if not pool:
                what = f"parallel {step.src}-{step.tgt} data" if step.kind == "mt" else f"monolingual {step.src} data"
                raise ValueError(f"the {step.kind} step {step.src}-{step.tgt} needs {what}; none was given")

    @property
    def batches_per_epoch(self) -> int:
        return 1

    def _lang(self, code: str, n: int) -> torch.Tensor:
        return torch.full((n,), self.lang_ids[code], dtype=torch.long)

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        step = self.steps[k % len(self.steps)]
        weight = self.lambdas[step.kind](k // len(self.steps))
        g = step_generator(self.seed, k, salt=3)
        pool = self.para[(step.src, step.tgt)] if step.kind == "mt" else self.mono[step.src]
        picks = torch.randint(len(pool), (self.batch_size,), generator=g).tolist()
        if step.kind == "mt":
            src_rows, tgt_rows = [pool[i][0] for i in picks], [pool[i][1] for i in picks]
        else:
            tgt_rows = [pool[i] for i in picks]
            src_rows = [self.noise(r, self.cfg.mask_index, g) for r in tgt_rows] if step.kind == "ae" else tgt_rows
        n = len(picks)
        src, src_mask = frame_rows(src_rows, self.cfg)
        tgt, _ = frame_rows(tgt_rows, self.cfg)
        batch = {"input_ids": src, "attention_mask": src_mask, "decoder_input_ids": tgt,
                 "labels": target_labels(tgt, self.cfg.pad_index), "weight": torch.full((n,), float(weight)),
                 "task": torch.full((n,), TASK_BT if step.kind == "bt" else TASK_MT, dtype=torch.long)}
        if self.lang_ids:  # models with language embeddings (no ids otherwise: nothing to carry)
            batch.update(langs=self._lang(step.src, n), bt_langs=self._lang(step.tgt, n),
                         decoder_langs=self._lang(step.tgt if step.kind != "bt" else step.src, n))
        return batch
