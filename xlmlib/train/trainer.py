"""The training loop: AdamW, warmup + decay, accumulation, clipping, autocast, checkpoints that resume exactly.

Used by pretraining (MLM/TLM/CLM) and fine-tuning alike. A *source* gives the global batch of a step as a
pure function of the step (`source.batch(step) -> dict of (B, ...) tensors` with "labels"), so resuming
needs no data-loader state. The loss module (losses.py) returns (loss sum, correct count); the loss is
divided by the number of targets in the global batch, so the update is the same whether the batch runs
in one piece, in grad_accum micro-batches, or across processes.

Mixed precision: bf16/fp16 run under torch.autocast, which keeps layer_norm, softmax and cross-entropy
in fp32 on both CPU and GPU (they are on autocast's fp32 list), and the LM loss casts its logits to fp32.
fp16 also uses a GradScaler; bf16 needs none. Parameters and optimizer state stay fp32, so autocast casts
every weight to bf16 again in every forward. "bf16-weights" (master.py) is bf16 autocast over bf16 weights:
the model holds bf16 working copies, made from fp32 master weights once per update (optimizer state stays
fp32), which removes those casts (24% of an XLM-R large step on a GPU) for losses equal within bf16 noise.
It works under DDP (gradients are all-reduced in bf16), not FSDP. Checkpoints, evaluation and the model
left after training hold the fp32 masters, as with "bf16".

Exact resume: the checkpoint holds model, optimizer, schedule, GradScaler and the torch RNG states (for
dropout); masking draws are seeded by (seed, step) in the sources. On a CPU, a run of 2N steps and a run
of N steps + --resume + N give bit-identical losses (tests/train/test_trainer.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from . import distributed as D
from .config import OptimConfig
from .master import BF16Weights
from .metrics import MetricsLog, plot_loss
from .step import Step

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of cfg.lr for the update made at `step` (0-based): linear warmup, then the decay."""
    warm = cfg.warmup_steps
    if warm and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "linear":
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(max(warm, 1) / (step + 1))
    return 1.0


def build_optimizer(module: nn.Module, cfg: OptimConfig, params: list | None = None) -> torch.optim.AdamW:
    """AdamW over module's trainable parameters, or over `params` in their place (the fp32 masters of
    precision bf16-weights). Biases and LayerNorm weights (1-d tensors) get no weight decay, as is usual
    for BERT-style models."""
    params = [p for p in module.parameters() if p.requires_grad] if params is None else params
    decay = [p for p in params if p.dim() > 1]
    plain = [p for p in params if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    # On a GPU the fused kernel updates every tensor in one launch; CPU keeps torch's default implementation.
    fused = bool(params) and all(p.device.type == "cuda" for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused or None)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "auto":
        ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    bf16, fp16 = torch.bfloat16, torch.float16
    return {"fp32": None, "bf16": bf16, "bf16-weights": bf16, "fp16": fp16}[precision]


def _rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): `checkpoint` holds the state after the last finished step (`step`), or is None
    when nothing could be saved (then `last` names the newest checkpoint on disk, if any)."""

    def __init__(self, step: int, checkpoint: Path | None, last: Path | None = None):
        super().__init__(step)
        self.step, self.checkpoint, self.last = step, checkpoint, last


# Options that may differ on --resume without changing what is trained (steps may grow to extend a run).
_BENIGN = {"steps", "progress", "log_every", "eval_every", "save_every", "patience"}


def _changes(saved: dict, now: dict) -> list[str]:
    """'name: old -> new' for every option that differs from the checkpoint's run."""
    def norm(v):
        return list(v) if isinstance(v, (tuple, list)) else v
    return [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in sorted(set(saved) & set(now))
            if norm(saved[k]) != norm(now[k])]


def atomic_save(obj, path: Path) -> None:
    """torch.save through a temporary file (xlmlib.atomic): a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Trainer:
    """Drives `module` (a loss module wrapping a model) over `source` for cfg.steps steps.

    evaluate(module, step) -> dict of metrics is called every cfg.eval_every steps and at the end, with
    the model in eval mode; its dict is logged (e.g. {"eval_loss": ...}). Everything is written under out_dir.
    """

    def __init__(self, module: nn.Module, cfg: OptimConfig, source, *, out_dir: str | os.PathLike,
                 evaluate: Callable[[nn.Module, int], dict] | None = None, dist: D.Dist | None = None):
        self.cfg, self.source, self.evaluate = cfg, source, evaluate
        self.dist = dist or D.Dist(device=next(module.parameters()).device)
        self.out = Path(out_dir)
        self.raw = module.to(self.dist.device)
        self.raw.model.gradient_checkpointing = cfg.gradient_checkpointing
        self.amp_dtype = resolve_precision(cfg.precision, self.dist.device)
        self.weights: BF16Weights | None = None  # the fp32 masters, while fit() runs with bf16-weights
        self.step = 0
        self.records: list[dict] = []

    # -- setup ---------------------------------------------------------------------------------------
    def _prepare(self, resume: bool) -> None:
        state = self._load_state() if resume else None
        if state is not None:
            self.raw.load_state_dict(state["model"])
        if self.cfg.precision == "bf16-weights":
            # Before DDP: its gradient buckets are laid out for the bf16 parameters the forward uses.
            self.weights = BF16Weights(self.raw)
        self.module = D.wrap(self.raw, self.dist, self.cfg.sharding)
        if self.weights is not None:
            # DDP's start-up broadcast gave every process rank 0's working copies; the masters must follow.
            D.broadcast(self.weights.masters, self.dist)
        masters = self.weights.parameters() if self.weights is not None else None
        self.optimizer = build_optimizer(self.module, self.cfg, masters)
        enabled = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.dist.device.type, enabled=enabled)
        self.step_fn = Step(self.raw, self.module, self.dist, compile=self.cfg.compile, amp_dtype=self.amp_dtype,
                            scaler=self.scaler, grad_accum=self.cfg.grad_accum)
        if state is not None:
            self._load_optimizer(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            self.step = state["step"]
            _set_rng_state(state["rng"])
            logger.info("resumed from %s at step %d", self.out / CHECKPOINT, self.step)
            self._report_resume(state)
        self.metrics = MetricsLog(self.out / "metrics.jsonl", resume_step=self.step) if self.dist.main else None

    def _report_resume(self, state: dict) -> None:
        changed = _changes(state.get("train_config", {}), asdict(self.cfg))
        real = [c for c in changed if c.split(":")[0] not in _BENIGN]
        if real:
            logger.warning("--resume with changed options (the checkpoint's run used the old values): %s",
                           "; ".join(real))
        if self.step >= self.cfg.steps:
            logger.warning("the run in %s already finished: its checkpoint is at step %d of steps=%d; nothing to "
                           "train (pass a larger --steps to continue it)", self.out, self.step, self.cfg.steps)

    def _load_optimizer(self, optim_state: dict) -> None:
        if self.cfg.sharding == "fsdp" and self.dist.active:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(self.module, self.optimizer, optim_state,
                                     options=StateDictOptions(full_state_dict=True))
        else:
            self.optimizer.load_state_dict(optim_state)

    def _load_state(self) -> dict | None:
        path = self.out / CHECKPOINT
        if not path.is_file():
            logger.warning("--resume: no checkpoint at %s, starting from step 0", path)
            return None
        # weights_only: a checkpoint is data (tensors, numbers, strings); nothing in it is executed on load.
        return torch.load(path, map_location="cpu", weights_only=True)

    def save(self, rng: dict | None = None) -> None:
        """Write DIR/checkpoint.pt (everything --resume needs), atomically, from rank 0. `rng`: the RNG state
        to record, when the current one has moved past the saved step (an interrupted step)."""
        model_state, optim_state = self._full_states()
        if not self.dist.main:
            return
        state = {"step": self.step, "model": model_state, "optimizer": optim_state,
                 "schedule": {"name": self.cfg.schedule, "warmup_steps": self.cfg.warmup_steps,
                              "factor": lr_factor(max(self.step - 1, 0), self.cfg)},
                 "scaler": self.scaler.state_dict(), "rng": rng or _rng_state(), "train_config": asdict(self.cfg),
                 "model_config": self.raw.model.config.to_dict()}
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_save(state, self.out / CHECKPOINT)

    def full_model_state(self) -> dict:
        """The whole model's state dict (keys as in self.raw.model) on every rank; a collective under FSDP."""
        state, _ = self._full_states()
        return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}

    def _full_states(self):
        if self.cfg.sharding == "fsdp" and self.dist.active:
            # Gathered on every rank (a collective), kept on the CPU, written by rank 0.
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_state_dict(self.module, self.optimizer, options=opts)
        with self._masters():
            return self.raw.state_dict(), self.optimizer.state_dict()

    def _masters(self):
        """With bf16-weights, the fp32 masters as the model's weights for the block (saving, evaluation)."""
        return self.weights.masters_in_model() if self.weights is not None else contextlib.nullcontext()

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self, *, resume: bool = False, stop_at: int | None = None) -> list[dict]:
        """Train to cfg.steps (or stop early at `stop_at`, schedule unchanged); returns the logged records."""
        self._prepare(resume)
        last = min(self.cfg.steps, stop_at or self.cfg.steps)
        bar = _progress(self.cfg, self.step, self.dist)
        self.stopped = False
        try:
            while self.step < last and not self.stopped:
                t0 = time.perf_counter()
                self._rng_before_step = _rng_state()
                loss, acc, n_tokens = self.train_step(self.step)
                self.step += 1
                self._rng_before_step = None  # the step finished: the current RNG state is the one to keep
                rate = n_tokens / max(time.perf_counter() - t0, 1e-9)
                self._after_step(loss, acc, rate, bar, last)
        except KeyboardInterrupt:
            raise self._interrupted() from None
        finally:
            if bar is not None:
                bar.close()
            if self.weights is not None:  # callers save and evaluate the model after fit: fp32 again
                self.weights.release()
                self.weights = None
        if self.dist.main and self.metrics is not None:
            plot_loss(self.out / "metrics.jsonl", self.out / "loss.png")
        return self.records

    def _interrupted(self) -> TrainingInterrupted:
        """Ctrl-C: save the state after the last finished step. The step in flight is dropped, and the RNG
        state recorded is the one it started from, so --resume replays it exactly. Under torchrun the other
        processes cannot join a save, so the newest checkpoint on disk is named instead."""
        path = self.out / CHECKPOINT
        if self.dist.active or self.step == 0:
            return TrainingInterrupted(self.step, None, path if path.is_file() else None)
        self.save(rng=getattr(self, "_rng_before_step", None))
        logger.warning("interrupted: saved %s at step %d", path, self.step)
        return TrainingInterrupted(self.step, path)

    def _after_step(self, loss, acc, rate, bar, last) -> None:
        cfg, record = self.cfg, None
        if self.step % cfg.log_every == 0 or self.step == last:
            record = {"step": self.step, "loss": loss, "accuracy": acc, "lr": self.optimizer.param_groups[0]["lr"],
                      "tokens_per_s": round(rate, 1)}
        if self.evaluate is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or self.step == last):
            record = record or {"step": self.step}
            record.update(self._run_eval())
            # An evaluator ends training early (fine-tuning patience) by returning stop=True.
            self.stopped = bool(record.pop("stop", False))
        if record is not None:
            self.records.append(record)
            if self.metrics is not None:
                self.metrics.write(record)
        if (cfg.save_every and self.step % cfg.save_every == 0) or self.step == last or self.stopped:
            self.save()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:.0f}")

    def _run_eval(self) -> dict:
        self.module.eval()
        try:
            with torch.no_grad(), self.step_fn.autocast(), self._masters():
                return self.evaluate(self.module, self.step)
        finally:
            self.module.train()

    def train_step(self, step: int) -> tuple[float, float, int]:
        """One optimizer update on the global batch of `step`; returns (mean loss, accuracy, tokens in the global batch)."""
        self.module.train()
        totals, n_targets = self.step_fn(D.shard_rows(self.source.batch(step), self.dist))
        loss = float(totals[0] / n_targets)
        if not math.isfinite(loss):
            raise FloatingPointError(_nan_help(step, loss, self.amp_dtype))
        self._update(step)
        return loss, float(totals[1] / n_targets), int(totals[2])

    def _update(self, step: int) -> None:
        lr = self.cfg.lr * lr_factor(step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.weights is not None:
            self.weights.grads_to_masters()
        self.scaler.unscale_(self.optimizer)
        if self.cfg.clip_norm > 0:
            params = self.weights.parameters() if self.weights is not None else self.module.parameters()
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.weights is not None:
            self.weights.masters_to_working()


def _nan_help(step: int, loss: float, amp_dtype) -> str:
    hint = {torch.float16: "fp16 overflows easily: try --precision bf16 or a lower lr",
            torch.bfloat16: "try a lower lr, a longer warmup or a smaller clip_norm"}.get(amp_dtype,
                                                                                         "try a lower lr or a longer warmup")
    return f"loss became {loss} at step {step} (that step's update was not applied); {hint}"


def _progress(cfg: OptimConfig, start: int, d: D.Dist):
    if not (cfg.progress and d.main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
