"""Intrinsic evaluation of a pretrained model: masked-token accuracy (with its unigram baseline) and
bitext retrieval by sentence embeddings. scripts/eval_mini.py uses them for the xlmlib-mini model card."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .api import embed
from .evaluation import mining


def _maskable(ids: torch.Tensor, tok, exclude_unk: bool) -> torch.Tensor:
    never = [tok.bos_id, tok.eos_id, tok.pad_id] + ([tok.unk_id] if exclude_unk else [])
    return ~torch.isin(ids, torch.tensor(never))


@torch.no_grad()
def masked_token_accuracy(model, tok, texts: Sequence[str], *, probability: float = 0.15, seed: int = 0,
                          batch_size: int = 64, top_k: int = 5, exclude_unk: bool = True) -> dict:
    """Mask each piece with `probability` (a generator seeded by `seed`: the same positions every run), predict
    it, and count top-1 / top-k hits. <unk> targets are skipped unless exclude_unk=False (predicting <unk>
    for a piece the vocabulary lacks would count as a hit). Returns top1, topk, n and the target ids."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    hits1 = hitsk = 0
    targets = []
    texts = sorted(texts, key=len)  # similar lengths batched together: little work on padding
    for start in range(0, len(texts), batch_size):
        batch = tok(texts[start:start + batch_size])
        ids = batch["input_ids"]
        chosen = (torch.rand(ids.shape, generator=g) < probability) & _maskable(ids, tok, exclude_unk)
        if not chosen.any():
            continue
        masked = ids.masked_fill(chosen, tok.mask_id)
        logits = model(masked.to(device), attention_mask=batch["attention_mask"].to(device)).logits[chosen.to(device)]
        best = logits.float().topk(top_k, dim=-1).indices.cpu()
        gold = ids[chosen]
        hits1 += int((best[:, 0] == gold).sum())
        hitsk += int((best == gold[:, None]).any(-1).sum())
        targets.append(gold)
    gold = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)
    n = max(gold.numel(), 1)
    return {"top1": hits1 / n, f"top{top_k}": hitsk / n, "n": gold.numel(), "targets": gold}


def unigram_accuracy(counts: np.ndarray, targets: torch.Tensor, *, top_k: int = 5, exclude: Sequence[int] = ()) -> dict:
    """The baseline that always predicts the most frequent pieces of `counts` (ids in `exclude` never)."""
    counts = np.asarray(counts, dtype=np.float64).copy()
    counts[list(exclude)] = -1
    ranked = torch.from_numpy(np.argsort(-counts, kind="stable")[:top_k].copy())
    n = max(targets.numel(), 1)
    return {"top1": float((targets == ranked[0]).sum()) / n,
            f"top{top_k}": float(torch.isin(targets, ranked).sum()) / n, "n": targets.numel()}


def retrieval_accuracy(model, tok, source: Sequence[str], target: Sequence[str], *, batch_size: int = 64,
                       center: bool = False, margin: str | None = None, k: int = 4) -> dict:
    """Line i of `source` and of `target` are translations. Each sentence's nearest neighbour (cosine of
    mean-pooled embeddings) among the other side's sentences: the share that finds its own translation,
    source->target and target->source, and chance (1 / number of pairs). center=True first subtracts each
    side's mean vector, which removes what all sentences of a language share (Libovický et al. 2020).
    margin="ratio" / "distance" ranks by the margin score over k neighbours instead (evaluation.mining)."""
    if len(source) != len(target) or not source:
        raise ValueError(f"retrieval needs aligned, non-empty sides; got {len(source)} and {len(target)} lines")
    a = embed(model, tok, list(source), batch_size=batch_size, progress=False)
    b = embed(model, tok, list(target), batch_size=batch_size, progress=False)
    if center:
        a, b = a - a.mean(0), b - b.mean(0)  # normalised again by the retrieval below
    found = mining.retrieval_accuracy(None, None, a, b, margin=margin, k=k, progress=False)
    return {key: found[key] for key in ("forward", "backward", "chance")}


__all__ = ["masked_token_accuracy", "retrieval_accuracy", "unigram_accuracy"]
