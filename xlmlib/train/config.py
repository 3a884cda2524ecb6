"""Training and fine-tuning configuration: frozen dataclasses, loadable from configs/tasks/*.toml recipes.

A recipe is a TOML file with exactly one table, `[pretrain]` or `[finetune]`, whose keys are the field
names below. Unknown keys and tables fail with the known names listed, so a typo never falls back to a
default silently. Command-line values override the recipe, which overrides the defaults here. Each
field is also a command-line flag with the help given here (cli/flags.py derives the flags from the fields).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..tasks import INITS, finetune_tasks

OBJECTIVES = ("mlm", "clm", "tlm", "mlm+tlm")
SCHEDULES = ("constant", "linear", "inverse_sqrt")
PRECISIONS = ("auto", "fp32", "bf16", "bf16-weights", "fp16")
SHARDINGS = ("ddp", "fsdp")
# aot_eager: the same graph capture without code generation; cudagraphs: inductor replaying CUDA graphs
COMPILE_BACKENDS = ("off", "inductor", "aot_eager", "cudagraphs")
TASK_MAX_LEN = {"qa": 384, "qa-beam": 384}  # fine-tuning's max_len when none is given (else 128)


# The --init help, the same for every training verb (tasks.build_model applies the rule).
INIT_HELP = ("pretrained: start from --model's weights (a folder, a checkpoint file, a model shipped with xlmlib "
             "or a hub name; never random weights silently); random: a new model of --model's architecture (a "
             "preset name, or any of those) with random weights, seeded by --seed")
MODEL_HELP = "what to train: a folder, checkpoint file, shipped model (xlmlib-mini) or hub name; with --init random " \
             "also a preset name (xlmlib.list_presets())"


def opt(default, help: str, *, choices=None, metavar=None, comma: bool = False):
    """A field whose command-line flag (cli/flags.py derives one per field) carries this help; choices may be a
    callable (the task registry), comma marks a list given as "a,b" on the command line."""
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar, "comma": comma})


@dataclass(frozen=True)
class OptimConfig:
    """The optimisation loop shared by pretraining and fine-tuning.

    schedule: linear warmup over warmup_steps, then "constant", "linear" decay to 0 at `steps`, or
      "inverse_sqrt" (lr·sqrt(warmup/step), XLM's adam_inverse_sqrt). Only "linear" depends on `steps`,
      so a "constant" or "inverse_sqrt" run can be extended later with --resume and a larger --steps
      and still match an unbroken run; that is why the pretraining default is not "linear".
    batch_size is the global batch (all processes, all accumulation micro-batches together).
    precision "auto" is bf16 autocast on a GPU that supports it, fp32 otherwise; "bf16-weights" is bf16
      autocast over bf16 copies of the weights made once per update from fp32 masters (train/master.py):
      no per-forward weight casts, the same losses within bf16 noise; DDP yes, FSDP no.
    """

    steps: int = opt(1000, "optimizer updates to run")
    batch_size: int = opt(32, "global batch (all processes and accumulation steps)")
    lr: float = opt(1e-4, "peak learning rate (AdamW)")
    warmup_steps: int = opt(0, "linear warmup from 0 to lr over this many steps")
    schedule: str = opt("constant", "after warmup: constant, linear decay to 0 at --steps, or inverse_sqrt",
                        choices=SCHEDULES)
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    betas: tuple[float, float] = opt((0.9, 0.98), "AdamW betas", metavar=("BETA1", "BETA2"))
    eps: float = opt(1e-6, "AdamW epsilon")
    grad_accum: int = opt(1, "micro-batches per update (each is batch_size / grad_accum / processes rows)")
    clip_norm: float = opt(1.0, "clip the gradient norm to this (0: no clipping)")
    precision: str = opt("auto", "autocast dtype; auto is bf16 on a GPU that supports it, else fp32; "
                         "bf16-weights: bf16 autocast over bf16 weight copies made once per update from fp32 "
                         "masters (no per-forward weight casts; for GPUs; not with --sharding fsdp)",
                         choices=PRECISIONS)
    compile: str = opt("off", "torch.compile the training step (model + loss as one graph, dynamic shapes) with "
                              "this backend; cudagraphs: static shapes replayed as CUDA graphs (inductor's "
                              "reduce-overhead mode), for batches of one shape such as stream windows",
                       choices=COMPILE_BACKENDS)
    gradient_checkpointing: bool = opt(False, "recompute layer activations in the backward pass (less memory)")
    sharding: str = opt("ddp", "under torchrun: replicate (ddp) or shard (fsdp)", choices=SHARDINGS)
    seed: int = opt(0, "seed of initialisation, data order, masking and dropout")
    log_every: int = opt(1, "steps between metrics.jsonl records")
    eval_every: int = opt(0, "steps between evaluations on the held-out data (0: at the end only)")
    save_every: int = opt(0, "steps between checkpoints for --resume (0: at the end only)")
    progress: bool = opt(True, "show a progress bar")

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
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("sharding", SHARDINGS),
                              ("compile", COMPILE_BACKENDS), ("init", INITS)):
            if getattr(self, name, allowed[0]) not in allowed:  # init: only where a run builds a model
                problems.append(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.precision == "bf16-weights" and self.sharding == "fsdp":
            # FSDP2 owns the parameters as shards (gathered per layer on use); the masters here assume each
            # process holds whole parameters, as DDP does.
            problems.append("precision 'bf16-weights' does not work with sharding 'fsdp' (FSDP holds the "
                            "parameters sharded); use precision 'bf16' with fsdp, or sharding 'ddp'")
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

    model: str = opt("", MODEL_HELP)
    init: str = opt("pretrained", INIT_HELP, choices=INITS)
    objective: str = opt("mlm", "masked LM, causal LM, translation LM on parallel pairs, or XLM's alternation "
                         "of MLM and TLM steps", choices=OBJECTIVES)
    train: tuple[str, ...] = opt((), "one text file or binarized prefix per language (glob patterns allowed)")
    parallel: tuple[str, ...] = opt((), "line-aligned files pairwise, SRC TGT [SRC TGT ...], for tlm and mlm+tlm")
    valid: tuple[str, ...] = opt((), "held-out files, as --train (or --parallel for tlm)")
    langs: tuple[str, ...] = opt((), "language codes in the order of the --train files, e.g. en,fr (default: "
                                 "each file's last suffix when they differ, else lang0, lang1, ...)", comma=True)
    parallel_langs: tuple[str, ...] = opt((), "language codes of the --parallel files, one per file; unset: each "
                                          "file's last suffix (train.de-en.de -> de)", comma=True)
    seq_len: int = opt(256, "tokens per training sequence")
    out: str = opt("", "output folder: checkpoint.pt, metrics.jsonl, loss.png, model/ (the trained model with its "
                   "tokenizer), data/ (binarized text)")
    tokenizer: str = opt("", "tokenizer source, or a word-list .txt (one word per line) (default: the tokenizer "
                         "beside --model)")
    mlm_probability: float = opt(0.15, "fraction of tokens (words with --whole-word) predicted")
    sample_alpha: float = opt(0.0, "> 0: XLM's frequency-smoothed choice of masked positions, p ~ count^-alpha")
    lang_alpha: float = opt(0.7, "language (and language pair) sampling exponent, p ~ n^alpha (0.7 XLM, 0.3 XLM-R)")
    reset_positions: bool = opt(True, "tlm: restart positions at 0 on the second sentence")
    whole_word: bool = opt(False, "mask whole words (word boundaries from the tokenizer), mlm and tlm")
    eval_steps: int = opt(10, "held-out batches per evaluation")
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

    model: str = opt("", MODEL_HELP)
    init: str = opt("pretrained", INIT_HELP, choices=INITS)
    task: str = opt("sequence", "sequence or token classification, or extractive question answering (qa; qa-beam: "
                    "XLM's beam-search span head)", choices=lambda: tuple(finetune_tasks()))
    train: tuple[str, ...] = opt((), "TSV / JSONL (sequence), CoNLL (token) or SQuAD JSON (qa, qa-beam) files")
    dev: tuple[str, ...] = opt((), "files evaluated during training; the best model (by accuracy; token: entity F1; "
                               "qa: F1) is kept in OUT/best")
    test: tuple[str, ...] = opt((), "files evaluated with the best model at the end: PATH (its language from --lang or "
                               "a lang column) or LANG=PATH, one table row per item")
    labels: tuple[str, ...] = opt((), "label names in id order (default: sorted from --train)", comma=True)
    lang: str = opt("", "language of files that do not say it per example")
    tokenizer: str = opt("", "tokenizer source (default: the model's)")
    out: str = opt("", "output folder: best/ (the best dev model with its tokenizer), results.json, checkpoint.pt, "
                   "metrics.jsonl, loss.png")
    max_len: int = opt(0, "tokens per example (a QA window), framing included; cut to the model's limit "
                          "(default: 128; 384 for qa and qa-beam, as run_qa)")
    doc_stride: int = opt(128, "qa: context tokens shared by consecutive windows of a long context")
    patience: int = opt(0, "stop after this many evaluations without a better dev score (0: never)")
    lr: float = 1e-5
    batch_size: int = 16
    steps: int = 1000
    warmup_steps: int = 0
    schedule: str = "linear"

    def __post_init__(self):
        _freeze_tuples(self)
        problems = self.check()
        if self.task not in finetune_tasks():
            problems.append(f"task must be one of {tuple(finetune_tasks())}, got {self.task!r}")
        if self.max_len == 0:  # the task's usual length
            object.__setattr__(self, "max_len", TASK_MAX_LEN.get(self.task, 128))
        if self.max_len < 4:
            problems.append(f"max_len must be >= 4, got {self.max_len}")
        if self.doc_stride < 0:
            problems.append(f"doc_stride must be >= 0, got {self.doc_stride}")
        if problems:
            raise ValueError("invalid FinetuneConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class MTConfig(OptimConfig):
    """A translation run (`xlmlib train-mt`), the original EncDecTrainer's steps (xlm-mt.md section 4).

    model: a Translator (folder or MT .pth), an encoder checkpoint (both halves initialised from it, as
    --reload_model enc,enc) or a preset name (random). langs: the pair, e.g. ["de", "en"].
    parallel: two line-aligned files in the order of langs; mono: one file per language (ae, bt);
    valid: two line-aligned held-out files, scored by BLEU (sacrebleu) in every trained direction.
    mt_steps ["de-en"], ae_steps ["de", "en"], bt_steps ["de-en-de"]; lambda_*: "x" or "it:val,...".
    Noise defaults are the README's (word_shuffle 3, word_dropout 0.1, word_blank 0.1).
    """

    model: str = opt("", "a Translator (folder or MT .pth) or an encoder checkpoint (both halves start from it); "
                     "with --init random also a preset name")
    init: str = opt("pretrained", INIT_HELP, choices=INITS)
    tokenizer: str = opt("", "tokenizer source, or a word-list .txt (default: the one beside --model)")
    out: str = opt("", "output folder: checkpoint.pt, metrics.jsonl, loss.png, model/ (the trained model with its "
                   "tokenizer)")
    langs: tuple[str, ...] = opt((), "the language pair, e.g. de,en", comma=True)
    parallel: tuple[str, ...] = opt((), "line-aligned files, in --langs order", metavar=("L1_FILE", "L2_FILE"))
    mono: tuple[str, ...] = opt((), "monolingual files (ae, bt steps)", metavar=("L1_FILE", "L2_FILE"))
    valid: tuple[str, ...] = opt((), "held-out pair scored by BLEU", metavar=("L1_FILE", "L2_FILE"))
    mt_steps: tuple[str, ...] = opt((), "supervised directions, e.g. de-en")
    ae_steps: tuple[str, ...] = opt((), "denoising auto-encoding languages, e.g. de en")
    bt_steps: tuple[str, ...] = opt((), "back-translation cycles, e.g. de-en-de en-de-en")
    lambda_mt: str = opt("1", "weight of mt steps: a number, or 'iteration:value,...' (piecewise linear)")
    lambda_ae: str = opt("1", "weight of ae steps: a number, or 'iteration:value,...' (piecewise linear)")
    lambda_bt: str = opt("1", "weight of bt steps: a number, or 'iteration:value,...' (piecewise linear)")
    word_shuffle: float = opt(3.0, "ae noise: each word moves fewer than this many places (0: off)")
    word_dropout: float = opt(0.1, "ae noise: probability of dropping a word")
    word_blank: float = opt(0.1, "ae noise: probability of replacing a word by the mask id")
    max_len: int = opt(100, "training sentences longer than this many tokens are dropped")
    eval_beams: int = opt(1, "beam size of the BLEU evaluation")
    eval_lines: int = opt(0, "score only the first N held-out lines (0: all)")
    lr: float = 1e-4
    steps: int = 1000
    schedule: str = "inverse_sqrt"
    warmup_steps: int = 100
    clip_norm: float = 5.0

    def __post_init__(self):
        _freeze_tuples(self)
        problems = self.check()
        if len(self.langs) != 2 or self.langs[0] == self.langs[1]:
            problems.append(f"langs must name two different languages, got {list(self.langs)}")
        for name in ("parallel", "mono", "valid"):
            if getattr(self, name) and len(getattr(self, name)) != 2:
                problems.append(f"{name} takes two files (one per language of langs), got {len(getattr(self, name))}")
        if self.max_len < 1 or self.eval_beams < 1 or self.eval_lines < 0:
            problems.append("max_len and eval_beams must be >= 1, eval_lines >= 0")
        for name in ("lambda_mt", "lambda_ae", "lambda_bt"):
            object.__setattr__(self, name, str(getattr(self, name)))
        if problems:
            raise ValueError("invalid MTConfig: " + "; ".join(problems))


def _freeze_tuples(cfg) -> None:
    """TOML and the command line give lists; keep the dataclass immutable. A bare string where a list
    belongs is an error rather than a tuple of its characters."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            object.__setattr__(cfg, f.name, tuple(value))
        elif isinstance(value, str) and f.type.startswith("tuple"):
            raise ValueError(f"{f.name} takes a list, got the string {value!r}")


RECIPE_KINDS = {"pretrain": TrainConfig, "finetune": FinetuneConfig, "train_mt": MTConfig}


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
        raise ValueError(f"{path}: a recipe has exactly one table, [pretrain], [finetune] or [train_mt]; found {sorted(data)}")
    kind, values = next(iter(data.items()))
    return kind, values


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None):
    """A TrainConfig or FinetuneConfig from a recipe, with `overrides` (e.g. command-line values) on top."""
    kind, values = read_recipe(path)
    return config_from_dict(RECIPE_KINDS[kind], {**values, **(overrides or {})}, where=str(path))
