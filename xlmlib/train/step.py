"""The training step: the loss modules the trainer drives, and Step, the forward/backward of one optimizer
update over a global batch, which the trainer and scripts/bench.py gpu both call.

A loss module wraps a model and its loss in one forward (so that DDP/FSDP hooks see every parameter the
loss touches: the LM projection reads the tied token embedding outside the embedding module) and returns
(sum of per-target losses, number of correct predictions). Its forward takes the batch and, as keywords,
what the step decides for it, among those its `options` declare: `checked` (the step ran the model's range
checks on the CPU batch) and `rows` (a fixed number of rows the LM head projects). `host_keys` declares the
batch tensors the step leaves on the CPU, where the model and the loss read their values (padding layout,
predicted positions), so a GPU step needs no host synchronisation.

Step owns the rest: the host/device split, the input checks, the graph row count of --compile cudagraphs
(the step as one static-shape graph replayed as CUDA graphs: every input goes to the device and the LM head
projects a fixed number of rows, counted on the CPU batch), compiling, and the micro-batches of gradient
accumulation. The loss is divided by the global number of targets (labels != IGNORE_INDEX over all
processes and micro-batches), so the gradient is that of the mean over the global batch however it is split.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from ..losses import IGNORE_INDEX, count_targets
from . import distributed as D

logger = logging.getLogger(__name__)

BATCH_KEYS = ("input_ids", "attention_mask", "langs", "positions", "token_type_ids")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in BATCH_KEYS}


class MaskedOnlyLMLoss(nn.Module):
    """MLM / TLM / CLM loss of a MaskedLM or CausalLM (its lm_loss) on the predicted positions only (M·V
    logits, not B·T·V). CLM labels come from objectives.clm_batch, already shifted."""

    host_keys = ("attention_mask", "labels")
    options = ("checked", "rows")

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], *, checked: bool = False,
                rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = model_inputs(batch)
        layout = self.model.plan(inputs["input_ids"], inputs.get("attention_mask"))
        h, _ = self.model.encode(**inputs, layout=layout, checked=checked)
        out = self.model.lm_loss(h, batch["labels"], reduction="sum", rows=rows, routes=layout.routes)
        correct = (out.logits.argmax(-1) == out.targets).sum()
        return out.loss, correct


class ClassificationLoss(nn.Module):
    """A SequenceClassifier (labels (B,)) or TokenClassifier (labels (B, T), IGNORE_INDEX = none) trained
    on the head's own loss (its `loss` method), summed."""

    host_keys = ("attention_mask",)
    options = ("checked",)

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], *, checked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**model_inputs(batch), checked=checked)
        out.logits = out.logits.float()
        labels = batch["labels"]
        loss = self.model.loss(out, labels, reduction="sum")
        keep = labels != IGNORE_INDEX
        correct = (out.logits.argmax(-1)[keep] == labels[keep]).sum()
        return loss, correct


def graph_rows(counts: list[int]) -> int:
    """The LM head's fixed row count for micro-batches with these numbers of predicted positions: the
    largest rounded up to a multiple of 1/16 to 1/8 of it (at least 8). Batches of one shape then see few
    distinct values, one graph each (far below dynamo's recompile limit), and filler rows add at most 1/8
    to the head's work."""
    top = max(counts, default=0)
    step = max(8, 1 << max(top.bit_length() - 4, 0))
    return -(-top // step) * step


def compile_step(module: nn.Module, backend: str, device: torch.device) -> nn.Module:
    """The loss module's forward (model + loss) and its backward compiled as one graph. inductor/aot_eager:
    dynamic shapes; the masked-only LM loss picks a data-dependent number of rows (nonzero), which dynamo
    captures in the graph instead of breaking it when capture_dynamic_output_shape_ops is on (a process-wide
    dynamo setting). cudagraphs: static shapes with inductor's reduce-overhead mode on CUDA; without CUDA
    the same static graph is captured by aot_eager (no code generation), which checks the capture only.
    Compiled, the encoder takes the padded attention route (routes.py), whose shapes depend only on B and T."""
    if backend == "cudagraphs":  # static shapes: nothing data-dependent is left in the step (graph_rows)
        if device.type == "cuda":
            return torch.compile(module, dynamic=False, mode="reduce-overhead")
        logger.warning("--compile cudagraphs: CUDA graphs need a GPU; on %s the static graph is only captured "
                       "(aot_eager)", device.type)
        return torch.compile(module, dynamic=False, backend="aot_eager")
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(module, backend=backend, dynamic=True)


class Step:
    """Forward and backward of one optimizer update over a global batch (this process's rows of it).

    loss_module: the unwrapped loss module (its model runs the checks); runner: what runs it, the same module
    or its DDP/FSDP wrapper; compile: "off" or an OptimConfig.compile backend; amp_dtype: the autocast dtype
    or None; scaler: the GradScaler the loss is scaled by (disabled outside fp16); grad_accum: micro-batches.
    Calling it returns (loss sum, correct count, tokens) over all processes, and the global target count."""

    def __init__(self, loss_module: nn.Module, runner: nn.Module, dist: D.Dist, *, compile: str = "off",
                 amp_dtype: torch.dtype | None = None, scaler=None, grad_accum: int = 1):
        self.loss_module, self.dist, self.grad_accum = loss_module, dist, grad_accum
        self.graphs = compile == "cudagraphs"
        self.runner = runner if compile == "off" else compile_step(runner, compile, dist.device)
        self.amp_dtype = amp_dtype
        self.scaler = scaler or torch.amp.GradScaler(dist.device.type, enabled=False)
        self.ddp = isinstance(runner, nn.parallel.DistributedDataParallel)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=self.amp_dtype)

    def to_device(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
        """The batch on this process's device, host_keys left on the CPU (all of it on the device under CUDA
        graphs), after the model's range checks on the CPU values; and the loss module's options."""
        host_keys, takes = getattr(self.loss_module, "host_keys", ()), getattr(self.loss_module, "options", ())
        options = {}
        if "checked" in takes:  # the model's checks run here, once, on the host
            inputs = model_inputs(batch)
            self.loss_module.model.check_inputs(inputs["input_ids"], inputs.get("langs"), inputs.get("positions"),
                                                inputs.get("token_type_ids"))
            options["checked"] = True
        if self.graphs and "rows" in takes:  # the LM head's row count: no sync, a static shape
            options["rows"] = graph_rows([int(count_targets(p["labels"])) for p in split(batch, self.grad_accum)])
        return D.to_device(batch, self.dist, () if self.graphs else host_keys), options

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward of the global batch's mean loss; returns (totals: loss sum, correct, tokens; target count)."""
        batch, options = self.to_device(batch)
        n_targets = D.all_sum(count_targets(batch["labels"]).to(self.dist.device, non_blocking=True),
                              self.dist).clamp(min=1)
        micro = split(batch, self.grad_accum)
        loss_sum = torch.zeros((), device=self.dist.device)
        correct = torch.zeros((), device=self.dist.device)
        for i, part in enumerate(micro):
            if self.graphs:  # a new step for inductor's CUDA-graph trees: the last step's outputs are dead
                torch.compiler.cudagraph_mark_step_begin()
            sync = i == len(micro) - 1 or not self.ddp
            with (contextlib.nullcontext() if sync else self.runner.no_sync()), self.autocast():
                part_loss, part_correct = self.runner(part, **options)
                # DDP and FSDP average gradients over processes; the factor `world` turns that average
                # back into the sum over the global batch, divided once by its global target count.
                scaled = part_loss * (self.dist.world / n_targets)
            self.scaler.scale(scaled).backward()
            loss_sum += part_loss.detach().float()
            correct += part_correct.detach().float()
        mask = batch.get("attention_mask")
        tokens = mask.sum().float() if mask is not None else torch.tensor(float(batch["input_ids"].numel()))
        totals = D.all_sum(torch.stack([loss_sum, correct, tokens.to(loss_sum.device, non_blocking=True)]), self.dist)
        return totals, n_targets


def split(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    rows = next(iter(batch.values())).shape[0]
    if rows % parts:
        raise ValueError(f"{rows} rows do not split into {parts} accumulation micro-batches")
    size = rows // parts
    return [{k: v[i * size : (i + 1) * size] for k, v in batch.items()} for i in range(parts)]
