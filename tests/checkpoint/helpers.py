"""Shared helpers: parity between a transformers model and ours, loaded through the production loader."""

from __future__ import annotations

import torch

from tests.parity.hf_models import batch, build, roberta_config, xlm_config  # noqa: F401

ATOL = 1e-5


def max_diff(hf_model, ours, pad_id: int, langs: bool = False) -> float:
    """Largest |difference| of the main output (logits, else hidden states) on a padded batch, real tokens only."""
    ids, mask = batch(pad_id)
    kwargs = {"langs": torch.full_like(ids, 1)} if langs else {}
    with torch.no_grad():
        ref = hf_model(input_ids=ids, attention_mask=mask, **kwargs)
        out = ours(ids, attention_mask=mask, **kwargs)
    ref_t = ref.logits if getattr(ref, "logits", None) is not None else ref.last_hidden_state
    our_t = out.logits if out.logits is not None else out.last_hidden_state
    if our_t.dim() == 3:  # per-token outputs: pads carry no meaning
        keep = mask.bool()
        return (ref_t[keep] - our_t[keep]).abs().max().item()
    return (ref_t - our_t).abs().max().item()
