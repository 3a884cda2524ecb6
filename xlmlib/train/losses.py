"""Loss modules the trainer drives: a model plus the loss of one objective, in one forward.

The loss is computed inside forward() so that DDP/FSDP hooks see every parameter the loss touches
(the LM projection reads the tied token embedding outside the embedding module). Each returns
(sum of per-target losses, number of correct predictions); the trainer divides by the global number
of targets (labels != -100, counted over all processes and micro-batches), so the gradient is that of
the mean over the global batch however it is split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import IGNORE_INDEX, masked_lm_loss

BATCH_KEYS = ("input_ids", "attention_mask", "langs", "positions", "token_type_ids")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in BATCH_KEYS}


def count_targets(labels: torch.Tensor) -> torch.Tensor:
    return (labels != IGNORE_INDEX).sum()


class MaskedOnlyLMLoss(nn.Module):
    """MLM / TLM / CLM loss of a MaskedLM or CausalLM on the predicted positions only (M·V logits, not
    B·T·V; objectives.masked_lm_loss). CLM labels come from objectives.clm_batch, already shifted."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.model.encode(**model_inputs(batch))
        head = self.model.lm_head
        out = masked_lm_loss(h, batch["labels"], self.model.embed.tokens.weight, head.bias,
                             transform=head.transform, reduction="sum")
        correct = (out.logits.argmax(-1) == out.targets).sum()
        return out.loss, correct


class FullProjectionLMLoss(MaskedOnlyLMLoss):
    """The same loss through the full (B·T·V) projection; only for benchmarks and equivalence tests."""

    def forward(self, batch):
        h, _ = self.model.encode(**model_inputs(batch))
        logits = self.model.lm_head(h, self.model.embed.tokens).float()
        labels = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        keep = labels != IGNORE_INDEX
        correct = (logits.argmax(-1)[keep] == labels[keep]).sum()
        return loss, correct


class ClassificationLoss(nn.Module):
    """Cross-entropy of a SequenceClassifier (labels (B,)) or TokenClassifier (labels (B, T), -100 = none)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(**model_inputs(batch)).logits.float()
        labels = batch["labels"]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
        keep = labels != IGNORE_INDEX
        correct = (logits.argmax(-1)[keep] == labels[keep]).sum()
        return loss, correct
