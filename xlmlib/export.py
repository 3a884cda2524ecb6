"""ONNX export of the encoder (dynamic batch and length), weights as external data so models over the
2 GB protobuf limit (xlm-roberta-large and up) export too."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class _EncoderGraph(nn.Module):
    """Positional inputs only: input_ids, attention_mask (and langs for models with language embeddings)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, langs=None):
        return self.model.encode(input_ids, attention_mask, langs)[0]


def export_onnx(model, path, *, example_length: int = 8) -> Path:
    """Write `path` (graph) and `path`.data (weights). Inputs: input_ids, attention_mask[, langs] (int64,
    batch x tokens); output: last_hidden_state. Needs the onnx extra (pip install 'xlmlib[onnx]')."""
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it; fail here with the extra's name
    except ImportError as err:
        raise ImportError("ONNX export needs the onnx extra: pip install 'xlmlib[onnx]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    ids = torch.full((2, example_length), cfg.pad_index + 3, dtype=torch.long)
    args = [ids, torch.ones_like(ids)]
    names = ["input_ids", "attention_mask"]
    if cfg.has_lang_emb:
        args.append(torch.zeros_like(ids))
        names.append("langs")
    batch, length = torch.export.Dim("batch"), torch.export.Dim("tokens", max=cfg.max_tokens)
    shapes = {name: {0: batch, 1: length} for name in ("input_ids", "attention_mask", "langs")[: len(args)]}
    graph = _EncoderGraph(model.eval())
    torch.onnx.export(graph, tuple(args), str(path), dynamo=True, input_names=names,
                      output_names=["last_hidden_state"], dynamic_shapes=shapes, external_data=True)
    return path
