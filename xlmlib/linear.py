"""Linear products, on the backend the call's routes name ("torch": F.linear; "onednn": oneDNN's matmul).

F.linear on CPU runs MKL's GEMM. oneDNN's matmul (torch.ops.mkldnn._linear_pointwise, the kernel
torch.compile's CPU backend uses for Linear layers) runs the same fp32 product faster on the 2-core AMD EPYC
machine this project measures: 205-216 GFLOP/s against MKL's 179-185 on 1024 rows times 1024x1024 and
1024x4096 weights, and 2-3x faster with a few rows and a wide weight. It also applies GELU or ReLU inside
the kernel, where a separate erf GELU after the FFN's first product costs about a quarter of that product.
It has no backward, so routes.py takes it only where no gradient is wanted, in fp32 outside autocast and
outside compiled graphs; under "auto" only for weights of at least routes.ONEDNN_MIN_WEIGHT elements. The
results are the same fp32 products summed in another order; the parity suite holds them to 1e-5 of
transformers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import routes as R

ACTIVATIONS = {"none": lambda x: x, "gelu": F.gelu, "relu": F.relu}


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str) -> torch.Tensor:
    """oneDNN's kernel itself; weight in PyTorch's layout or prepacked (precision.py fp32-onednn)."""
    algorithm = "none" if activation == "gelu" else ""  # oneDNN's gelu "none" is the erf form
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], algorithm)


def call_facts(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> R.Facts:
    """The facts of one product called outside a planned forward (no routes given)."""
    wants_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    autocast = R.autocast_dtype(x.device.type) is not None
    dtype = weight.dtype if x.dtype == weight.dtype else x.dtype
    return R.Facts(device=x.device.type, dtype=dtype, grad=wants_grad, autocast=autocast,
                   compiling=torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, activation: str = "none", *,
           routes: R.Routes | None = None) -> torch.Tensor:
    """activation(x W^T + b); activation is "none", "gelu" (the exact erf form) or "relu". routes: the call's
    (a planned forward's); without them the product is routed by "auto" from its own tensors."""
    check_activation(activation)
    if routes is None:
        routes = R.Routes(linear=R.choose_one("linear", "auto", call_facts(x, weight, bias)))
    if routes.product(weight) == "onednn":
        return onednn_linear(x, weight, bias, activation)
    return ACTIVATIONS[activation](F.linear(x, weight, bias))


class Linear(nn.Linear):
    """nn.Linear (same parameters and state-dict keys) whose product goes through linear() above, on the
    backend of the call's routes, with an optional activation fused into it."""

    def forward(self, x: torch.Tensor, routes: R.Routes | None = None, *, activation: str = "none") -> torch.Tensor:
        return linear(x, self.weight, self.bias, activation, routes=routes)
