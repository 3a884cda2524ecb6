"""Every loss in one place: the LM loss (masked-only or through the full projection), classification
(single-label, regression, multi-label), per-token classification, extractive spans and multiple choice.

Heads compute logits and call these; the trainer's loss modules (train/losses.py) call the same
functions with reduction="sum", so fine-tuning trains exactly the loss a head reports. Shapes as in
model.py (B T D V C); M is the number of predicted positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .linear import linear
from .routes import Routes

IGNORE_INDEX = -100  # the label of a position that is not predicted (torch cross_entropy's default)
REDUCTIONS = ("mean", "sum")


class LMLoss(NamedTuple):
    loss: torch.Tensor  # scalar
    logits: torch.Tensor  # (M, V) logits of the predicted positions only (or of a fixed number of rows)
    targets: torch.Tensor  # (M,) their labels (IGNORE_INDEX on a fixed count's filler rows)


def _check(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def masked_lm_loss(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    reduction: str = "mean",
    rows: int | None = None,
    routes: Routes | None = None,
) -> LMLoss:
    """Cross-entropy of the LM head computed on the predicted rows only: (M, D) @ (D, V), not (B·T, V).

    hidden (B, T, D); labels (B, T) with IGNORE_INDEX where nothing is predicted; weight (V, D) (tied to
    the input embedding or not); transform: the head's per-row step before the projection (XLM-R's
    lm_head dense → gelu → LayerNorm; XLM's pred_layer has none). Equal to cross_entropy over the full
    projection with ignore_index (MLM 0.15·B·T rows instead of B·T; pytext PR#957, user-needs item 2).
    reduction "sum" lets a data-parallel trainer divide by the global count of predicted positions.
    With no predicted position the loss is 0 (kept in the graph), not the NaN of a mean over nothing.
    rows: project exactly this many rows whatever the labels (static shapes, which CUDA graphs need): the
    predicted positions, then filler rows without a target. It must be at least the number of predicted
    positions (the trainer counts them on its CPU batch); the loss is the same. routes: the forward's (the
    projection's backend).
    """
    _check(reduction)
    picked, targets = predicted_rows(hidden, labels) if rows is None else fixed_rows(hidden, labels, rows)
    if transform is not None:
        picked = transform(picked)
    logits = linear(picked, weight, bias, routes=routes)
    loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    if reduction == "mean":  # no branch on M, so a compiled step does not break its graph here
        count = torch.sym_max(targets.numel(), 1) if rows is None else (targets != IGNORE_INDEX).sum().clamp(min=1)
        loss = loss / count
    return LMLoss(loss, logits, targets)


def predicted_rows(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, D) hidden rows and (M,) labels of the predicted positions. Selecting them with labels on a GPU
    reads the count M back (a host synchronisation); labels on the CPU (as the trainer passes them) are
    read there instead, and only the M indices and labels travel to the hidden states' device."""
    selected = labels != IGNORE_INDEX
    if labels.device.type != "cpu":
        return hidden[selected], labels[selected]
    index = selected.reshape(-1).nonzero().squeeze(1)
    targets = labels.reshape(-1)[index].to(hidden.device, non_blocking=True)
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index.to(hidden.device, non_blocking=True))
    return rows, targets


def fixed_rows(hidden: torch.Tensor, labels: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, D) hidden rows and (rows,) labels: the predicted positions in order, then filler rows (the
    last position again, labelled IGNORE_INDEX). nonzero_static gives the fixed shape without reading the
    count back from the device."""
    flat = labels.reshape(-1)
    n = flat.numel()
    index = torch.nonzero_static(flat != IGNORE_INDEX, size=rows, fill_value=n).squeeze(1)
    targets = torch.cat([flat, flat.new_full((1,), IGNORE_INDEX)]).index_select(0, index)
    index = index.clamp(max=n - 1).to(hidden.device, non_blocking=True)
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
    return picked, targets.to(hidden.device, non_blocking=True)


def full_lm_loss(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """The same loss from the full (B, T, V) logits (labels B T, IGNORE_INDEX where nothing is predicted)."""
    _check(reduction)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int, *,
                        reduction: str = "mean") -> torch.Tensor:
    """HF's three problem types of sequence classifiers: floats with num_labels == 1 (MSE regression),
    class ids (cross-entropy; IGNORE_INDEX rows skipped), or a float multi-hot matrix (BCE)."""
    _check(reduction)
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1), reduction=reduction)
    if labels.dtype in (torch.long, torch.int):
        return F.cross_entropy(logits.reshape(-1, num_labels), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                               reduction=reduction)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction=reduction)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy per token (logits B T C, labels B T); IGNORE_INDEX where no label applies."""
    _check(reduction)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction=reduction)


def span_loss(start_logits, end_logits, start_positions, end_positions, *, reduction: str = "mean"):
    """Mean of the start and end cross-entropies (B T logits). Positions outside the sequence are clamped
    to T and ignored, as in HF's span heads."""
    _check(reduction)
    ignored = start_logits.shape[1]
    start = start_positions.view(-1).clamp(0, ignored)
    end = end_positions.view(-1).clamp(0, ignored)
    return (F.cross_entropy(start_logits, start, ignore_index=ignored, reduction=reduction)
            + F.cross_entropy(end_logits, end, ignore_index=ignored, reduction=reduction)) / 2


def beam_span_loss(start_logits, end_logits, start_positions, end_positions, cls_logits=None, is_impossible=None,
                   *, reduction: str = "mean"):
    """The XLNet-style SQuAD head's loss (modeling_xlm XLMSQuADHead): the mean of the start and end
    cross-entropies (positions not clamped), plus half the answerability BCE when cls_logits are given."""
    _check(reduction)
    loss = (F.cross_entropy(start_logits, start_positions, reduction=reduction)
            + F.cross_entropy(end_logits, end_positions, reduction=reduction)) / 2
    if cls_logits is not None:
        loss = loss + 0.5 * F.binary_cross_entropy_with_logits(cls_logits, is_impossible.to(cls_logits.dtype),
                                                               reduction=reduction)
    return loss


def choice_loss(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the choices (logits B C, labels B)."""
    _check(reduction)
    return F.cross_entropy(logits, labels.view(-1), reduction=reduction)


def count_targets(labels: torch.Tensor) -> torch.Tensor:
    """How many labels a loss with reduction "sum" added up (IGNORE_INDEX excluded)."""
    return (labels != IGNORE_INDEX).sum()
