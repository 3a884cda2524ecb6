"""Inference precisions: dynamic int8 and bf16.

int8: every Linear becomes an int8 matrix (one scale per output row) applied with dynamically quantized
activations (PyTorch's quantized::linear_dynamic, fbgemm/x86). The token table, a quarter to a third of
XLM-R base's weights, is stored as int8 rows with one scale each, and the tied LM projection is an int8
Linear built from the same table, so the 250k-row vocabulary is quantized on both of its uses (dynamic
quantization of nn.Linear alone would leave it fp32).

bf16: weights in bfloat16 except LayerNorm parameters, which stay fp32 so normalisation is computed and
accumulated in fp32; scaled_dot_product_attention accumulates its softmax in fp32 for bf16 inputs.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("int8", "bf16")


class Int8Linear(nn.Module):
    """y = x W^T + b with W int8 per output channel and x quantized per call (7-bit range, as fbgemm needs)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        w = weight.detach().float()
        scale = (w.abs().amax(dim=1).clamp(min=1e-8) / 127).double()
        zero = torch.zeros(w.shape[0], dtype=torch.long)
        qweight = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
        self.out_features = w.shape[0]
        self._packed = torch.ops.quantized.linear_prepack(qweight, None if bias is None else bias.detach().float())

    def forward(self, x):
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, x.shape[-1]).float().contiguous(), self._packed, True)
        return y.view(*x.shape[:-1], self.out_features)


class Int8Embedding(nn.Module):
    """Rows stored as int8 with one fp32 scale each; looked-up rows are dequantized."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        w = embedding.weight.detach().float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
        self.register_buffer("qweight", torch.round(w / scale).to(torch.int8))
        self.register_buffer("scale", scale)
        self.padding_idx = embedding.padding_idx

    def forward(self, ids):
        flat = ids.reshape(-1)
        rows = self.qweight.index_select(0, flat).float() * self.scale.index_select(0, flat)
        return rows.view(*ids.shape, -1)


def _replace_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child.weight, child.bias))
        else:
            _replace_linears(child)


def to_int8(model) -> None:
    lm_head = getattr(model, "lm_head", None)
    if lm_head is not None:  # the tied projection, quantized from the fp32 table before it is replaced
        lm_head.quantized = Int8Linear(model.embed.tokens.weight, lm_head.bias)
    model.float()
    _replace_linears(model)
    model.embed.tokens = Int8Embedding(model.embed.tokens)


def bf16_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters bf16 stores in bfloat16, each once (a tied table is one parameter): all but
    LayerNorm's. The training mode precision "bf16-weights" (train/master.py) uses the same rule."""
    seen, out = set(), []
    for module in model.modules():
        if not isinstance(module, nn.LayerNorm):
            for param in module.parameters(recurse=False):
                if id(param) not in seen:
                    seen.add(id(param))
                    out.append(param)
    return out


def to_bf16(model) -> None:
    for param in bf16_params(model):
        param.data = param.data.to(torch.bfloat16)


def quantize(model, mode: str):
    """Convert model in place for inference; it can no longer be trained or saved."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if getattr(model, "precision", None) is not None:
        raise ValueError(f"model is already converted to {model.precision}")
    if mode == "int8" and "x86" not in torch.backends.quantized.supported_engines \
            and "fbgemm" not in torch.backends.quantized.supported_engines:
        raise RuntimeError("int8 needs PyTorch's x86/fbgemm quantized engine, which this build lacks")
    (to_int8 if mode == "int8" else to_bf16)(model)
    model.precision = mode
    return model.eval().requires_grad_(False)
