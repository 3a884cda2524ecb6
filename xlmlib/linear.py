"""Linear products, with CPU fp32 inference through oneDNN's matmul.

F.linear on CPU runs MKL's GEMM. oneDNN's matmul (torch.ops.mkldnn._linear_pointwise, the kernel
torch.compile's CPU backend uses for Linear layers) runs the same fp32 product faster on the 2-core AMD EPYC
machine this project measures: 205-216 GFLOP/s against MKL's 179-185 on 1024 rows times 1024x1024 and
1024x4096 weights, and 2-3x faster with a few rows and a wide weight. It also applies GELU or ReLU inside
the kernel, where a separate erf GELU after the FFN's first product costs about a quarter of that product.
The kernel has no backward, so it is taken only where no gradient is wanted (torch.no_grad, inference
mode, or frozen weights and inputs), in fp32 outside autocast, outside compiled or exported graphs, and for
weights of at least ONEDNN_MIN_WEIGHT elements (below that its fixed cost of about 15 us per call is more
than MKL takes). Training and every other device keep F.linear. The results are the same fp32 products
summed in another order; the parity suite (tests/parity) holds them to 1e-5 of transformers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"none": lambda x: x, "gelu": F.gelu, "relu": F.relu}
ONEDNN_MIN_WEIGHT = 1 << 16  # 256 x 256; the tests set 0 to run tiny models through the kernel too
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device argument
        return torch.is_autocast_cpu_enabled()


def onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether linear() runs x W^T + b through oneDNN (see the module docstring for the rule)."""
    if not _ONEDNN or x.device.type != "cpu" or weight.numel() < ONEDNN_MIN_WEIGHT:
        return False
    if x.dtype != torch.float32 or weight.dtype != torch.float32 or (bias is not None and bias.dtype != x.dtype):
        return False
    wants_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                              or (bias is not None and bias.requires_grad))
    return not wants_grad and not _cpu_autocast() and not _tracing()


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str) -> torch.Tensor:
    """oneDNN's kernel itself; weight in PyTorch's layout or prepacked (quantize.py fp32-onednn)."""
    algorithm = "none" if activation == "gelu" else ""  # oneDNN's gelu "none" is the erf form
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], algorithm)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           activation: str = "none") -> torch.Tensor:
    """activation(x W^T + b); activation is "none", "gelu" (the exact erf form) or "relu"."""
    check_activation(activation)
    if onednn_applies(x, weight, bias):
        return onednn_linear(x, weight, bias, activation)
    return ACTIVATIONS[activation](F.linear(x, weight, bias))


class Linear(nn.Linear):
    """nn.Linear (same parameters and state-dict keys) whose product goes through linear() above, with an
    optional activation fused into it."""

    def forward(self, x: torch.Tensor, activation: str = "none") -> torch.Tensor:
        return linear(x, self.weight, self.bias, activation)
