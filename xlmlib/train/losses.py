"""What the trainer drives: a model plus its loss in one forward, returning (sum of per-target losses,
number of correct predictions). The loss itself is the model's own (xlmlib/losses.py through the head).

The loss is computed inside forward() so that DDP/FSDP hooks see every parameter the loss touches
(the LM projection reads the tied token embedding outside the embedding module). The trainer divides
the sum by the global number of targets (labels != IGNORE_INDEX, counted over all processes and
micro-batches), so the gradient is that of the mean over the global batch however it is split.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import IGNORE_INDEX, count_targets

BATCH_KEYS = ("input_ids", "attention_mask", "langs", "positions", "token_type_ids")

__all__ = ["BATCH_KEYS", "ClassificationLoss", "MaskedOnlyLMLoss", "count_targets", "model_inputs"]


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in BATCH_KEYS}


class MaskedOnlyLMLoss(nn.Module):
    """MLM / TLM / CLM loss of a MaskedLM or CausalLM (its lm_loss) on the predicted positions only (M·V
    logits, not B·T·V). CLM labels come from objectives.clm_batch, already shifted. full_projection=True
    projects every position first: the same loss, kept for equivalence tests and benchmarks."""

    # Kept on the CPU by the trainer: the padding layout and the predicted positions are read there, so a
    # GPU step needs no host synchronisation (model.py _key_mask, losses.py _predicted_rows).
    host_keys = ("attention_mask", "labels")

    def __init__(self, model: nn.Module, *, full_projection: bool = False):
        super().__init__()
        self.model = model
        self.full_projection = full_projection
        # A fixed number of projected rows (static shapes for CUDA graphs; set per step by the trainer
        # under --compile cudagraphs, at least the batch's predicted positions), or None: exactly those.
        self.fixed_rows: int | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.model.encode(**model_inputs(batch))
        labels = batch["labels"].to(h.device) if self.full_projection else batch["labels"]
        out = self.model.lm_loss(h, labels, reduction="sum", full_projection=self.full_projection,
                                 rows=self.fixed_rows)
        correct = (out.logits.argmax(-1) == out.targets).sum()
        return out.loss, correct


class ClassificationLoss(nn.Module):
    """A SequenceClassifier (labels (B,)) or TokenClassifier (labels (B, T), IGNORE_INDEX = none) trained
    on the head's own loss (its `loss` method), summed."""

    host_keys = ("attention_mask",)

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**model_inputs(batch))
        out.logits = out.logits.float()
        labels = batch["labels"]
        loss = self.model.loss(out, labels, reduction="sum")
        keep = labels != IGNORE_INDEX
        correct = (out.logits.argmax(-1)[keep] == labels[keep]).sum()
        return loss, correct
