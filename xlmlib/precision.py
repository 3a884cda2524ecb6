"""Precision conversions for inference: dynamic int8, bf16, and fp32 Linear layers prepacked for oneDNN (CPU);
and the rule of which parameters bf16 stores in bfloat16, shared with training's bf16-weights (train/master.py).

int8: every Linear becomes an int8 matrix (one scale per output row) applied with dynamically quantized
activations (PyTorch's quantized::linear_dynamic, fbgemm/x86). The token table, a quarter to a third of
XLM-R base's weights, is stored as int8 rows with one scale each, and the tied LM projection is an int8
Linear built from the same table, so the 250k-row vocabulary is quantized on both of its uses (dynamic
quantization of nn.Linear alone would leave it fp32).

bf16: weights in bfloat16 except LayerNorm parameters, which stay fp32 so normalisation is computed and
accumulated in fp32; scaled_dot_product_attention accumulates its softmax in fp32 for bf16 inputs.

fp32-onednn: the same fp32 numbers, with every Linear's weight reordered once into oneDNN's blocked
layout. Plain fp32 inference on CPU already multiplies through oneDNN's matmul (linear.py), reading the
weights in PyTorch's layout; prepacking them gained a further 1-7% on the XLM 1024-d forward on the
2-core AMD EPYC machine this project measures (the README's speed section), and the model can no
longer be trained or saved.
"""

from __future__ import annotations

import torch
from torch import nn

from .linear import ACTIVATIONS, check_activation, onednn_linear

MODES = ("int8", "bf16", "fp32-onednn")


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

    def forward(self, x, routes=None, *, activation: str = "none"):
        """routes are accepted as every Linear's call passes them: int8 has one kernel."""
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, x.shape[-1]).float().contiguous(), self._packed, True)
        return ACTIVATIONS[activation](y.view(*x.shape[:-1], self.out_features))


class OneDNNLinear(nn.Module):
    """activation(x W^T + b) in fp32 by oneDNN's matmul (linear.py), with W reordered once into oneDNN's
    blocked layout (torch.ops.mkldnn._reorder_linear_weight, the prepacking torch.compile's CPU freezing
    uses) instead of read from PyTorch's row-major layout in every call."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self._weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach().float().contiguous(), None)
        self._bias = None if bias is None else bias.detach().float().contiguous()

    def forward(self, x, routes=None, *, activation: str = "none"):
        """routes are accepted as every Linear's call passes them: the prepacked weight has one kernel."""
        check_activation(activation)
        return onednn_linear(x.float(), self._weight, self._bias, activation)


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


def _replace_linears(module: nn.Module, cls=Int8Linear) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, cls(child.weight, child.bias))
        else:
            _replace_linears(child, cls)


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


def to_onednn(model) -> None:
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        raise RuntimeError("fp32-onednn needs PyTorch built with oneDNN (torch.backends.mkldnn) and its "
                           "prepacked linear (torch.ops.mkldnn._linear_pointwise), which this build lacks")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("fp32-onednn is a CPU conversion; this model has parameters on another device")
    model.float()
    _replace_linears(model, OneDNNLinear)


def quantize(model, mode: str):
    """Convert model in place for inference; it can no longer be trained or saved."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if getattr(model, "precision", None) is not None:
        raise ValueError(f"model is already converted to {model.precision}")
    if mode == "int8" and "x86" not in torch.backends.quantized.supported_engines \
            and "fbgemm" not in torch.backends.quantized.supported_engines:
        raise RuntimeError("int8 needs PyTorch's x86/fbgemm quantized engine, which this build lacks")
    {"int8": to_int8, "bf16": to_bf16, "fp32-onednn": to_onednn}[mode](model)
    model.precision = mode
    return model.eval().requires_grad_(False)
