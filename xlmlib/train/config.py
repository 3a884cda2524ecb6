"""Training and fine-tuning configuration: frozen dataclasses, loadable from configs/tasks/*.toml recipes.

A recipe is a TOML file with exactly one table, `[pretrain]` or `[finetune]`, whose keys are the field
names below. Unknown keys and tables fail with the known names listed, so a typo never falls back to a
default silently. Command-line values override the recipe, which overrides the defaults here.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OBJECTIVES = ("mlm", "clm", "tlm", "mlm+tlm")
SCHEDULES = ("constant", "linear", "inverse_sqrt")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SHARDINGS = ("ddp", "fsdp")
FINETUNE_TASKS = ("sequence", "token")


@dataclass(frozen=True)
class OptimConfig:
    """The optimisation loop shared by pretraining and fine-tuning.

    schedule: linear warmup over warmup_steps, then "constant", "linear" decay to 0 at `steps`, or
      "inverse_sqrt" (lr·sqrt(warmup/step), XLM's adam_inverse_sqrt). Only "linear" depends on `steps`,
      so a "constant" or "inverse_sqrt" run can be extended later with --resume and a larger --steps
      and still match an unbroken run; that is why the pretraining default is not "linear".
    batch_size is the global batch (all processes, all accumulation micro-batches together).
    precision "auto" is bf16 autocast on a GPU that supports it, fp32 otherwise.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_accum: int = 1
    clip_norm: float = 1.0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    sharding: str = "ddp"
    seed: int = 0
    log_every: int = 1
    eval_every: int = 0
    save_every: int = 0
    progress: bool = True

    def check(self) -> list[str]:
        problems = []
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "save_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.batch_size % self.grad_accum:
            problems.append(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("sharding", SHARDINGS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        return problems


@dataclass(frozen=True)
class TrainConfig(OptimConfig):
    """A pretraining run (`xlmlib pretrain`). train: one file per language, in the order of `langs`.

    sample_alpha > 0 turns on XLM's frequency-smoothed choice of masked positions (exact count,
    p ∝ count^-alpha); 0 is XLM-R's Bernoulli masking. lang_alpha is the language sampling exponent
    (0.7 XLM, 0.3 XLM-R). whole_word masks whole words (the tokenizer's word boundaries: SentencePiece's
    leading ▁, BPE's closing </w>; not BERT's "##"), for mlm and tlm.

    "mlm+tlm" is XLM's recipe: even steps are MLM on the `train` files (one language per step, p ∝
    n^lang_alpha), odd steps TLM on the `parallel` pairs (one pair per step, the same smoothing over pair
    sizes). parallel lists SRC TGT files pairwise; entries may be glob patterns, and two patterns that
    match equally many files pair their k-th matches. A file's language is `langs` / `parallel_langs`
    (one code per file) or else its last suffix (XLM's naming: train.de-en.de is German).
    """

    model: str = ""
    objective: str = "mlm"
    train: tuple[str, ...] = ()
    parallel: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    parallel_langs: tuple[str, ...] = ()
    seq_len: int = 256
    out: str = ""
    tokenizer: str = ""
    mlm_probability: float = 0.15
    sample_alpha: float = 0.0
    lang_alpha: float = 0.7
    reset_positions: bool = True
    whole_word: bool = False
    eval_steps: int = 10
    steps: int = 1000
    lr: float = 1e-4

    def __post_init__(self):
        _freeze_tuples(self)
        problems = self.check()
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.seq_len < 4:
            problems.append(f"seq_len must be >= 4, got {self.seq_len}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class FinetuneConfig(OptimConfig):
    """A fine-tuning run (`xlmlib finetune`). Defaults follow the published XNLI protocol
    (user-needs item 5: Adam 5e-6..1e-5, batch 8..128, evaluate regularly, keep the best on dev)."""

    model: str = ""
    task: str = "sequence"
    train: tuple[str, ...] = ()
    dev: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    lang: str = ""
    tokenizer: str = ""
    out: str = ""
    max_len: int = 128
    patience: int = 0
    lr: float = 1e-5
    batch_size: int = 16
    steps: int = 1000
    warmup_steps: int = 0
    schedule: str = "linear"

    def __post_init__(self):
        _freeze_tuples(self)
        problems = self.check()
        if self.task not in FINETUNE_TASKS:
            problems.append(f"task must be one of {FINETUNE_TASKS}, got {self.task!r}")
        if self.max_len < 4:
            problems.append(f"max_len must be >= 4, got {self.max_len}")
        if problems:
            raise ValueError("invalid FinetuneConfig: " + "; ".join(problems))


def _freeze_tuples(cfg) -> None:
    """TOML and the command line give lists; keep the dataclass immutable. A bare string where a list
    belongs is an error rather than a tuple of its characters."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            object.__setattr__(cfg, f.name, tuple(value))
        elif isinstance(value, str) and f.type.startswith("tuple"):
            raise ValueError(f"{f.name} takes a list, got the string {value!r}")


RECIPE_KINDS = {"pretrain": TrainConfig, "finetune": FinetuneConfig}


def config_from_dict(cls, data: dict[str, Any], *, where: str = "config"):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**data)


def read_recipe(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(kind, values) of a recipe file, kind "pretrain" or "finetune"; values are not yet validated."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    if len(data) != 1 or next(iter(data)) not in RECIPE_KINDS or not isinstance(next(iter(data.values())), dict):
        raise ValueError(f"{path}: a recipe has exactly one table, [pretrain] or [finetune]; found {sorted(data)}")
    kind, values = next(iter(data.items()))
    return kind, values


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None):
    """A TrainConfig or FinetuneConfig from a recipe, with `overrides` (e.g. command-line values) on top."""
    kind, values = read_recipe(path)
    return config_from_dict(RECIPE_KINDS[kind], {**values, **(overrides or {})}, where=str(path))
