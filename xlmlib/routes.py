"""Routes: which kernels a forward takes, chosen by one pure function from declared facts and settings.

A model has three runtime settings (attributes of the model object, never written to config.json):

    model.attention = "auto" | "padded" | "grid" | "per_row" | "varlen" | "jagged"
    model.qkv       = "auto" | "fused" | "separate"
    model.linear    = "auto" | "torch" | "onednn"

Attention routes (N: the real tokens of a padded B x T batch):
- padded: no packing; the B x T grid throughout, one SDPA under the padding mask (transformers' layout;
  the only route with a KV cache, and the one compiled graphs take);
- grid: dense parts (projections, FFN, LayerNorm) on the N real tokens, attention on the masked grid;
- per_row: dense parts on the N real tokens, one SDPA per row on that row's tokens;
- varlen: dense parts on the N real tokens, one variable-length attention over them (cu_seqlens): on CUDA
  torch's FlashAttention kernel (torch.nn.attention.varlen, fp16/bf16, no attention dropout), on the CPU a
  reference kernel (one SDPA per sequence) with the same layout;
- jagged: dense parts on the N real tokens, SDPA over jagged nested tensors (torch.nested, a prototype API;
  no causal mask, no empty row).
q/k/v: "fused" projects them with one GEMM over the stacked weights, "separate" with three.
Linear products: "torch" is F.linear; "onednn" is oneDNN's fp32 matmul on the CPU with GELU fused into it
(linear.py), which has no backward: inference only.

"auto" takes, per device type, the first route of PREFERRED that has been verified there (VERIFIED: where
and when it ran and matched the padded route, outputs and gradients) and can take the call; otherwise the
REFERENCE route, plain PyTorch. A route asked for by name that cannot take a call raises RouteError saying
why and which routes can run there; a route asked for by name on a device type where it was never verified
runs, with a one-line note. The route a call takes is logged once per (route, device type) at INFO.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

ROUTES = {
    "attention": ("padded", "grid", "per_row", "varlen", "jagged"),
    "qkv": ("fused", "separate"),
    "linear": ("torch", "onednn"),
}
REFERENCE = {"attention": "padded", "qkv": "separate", "linear": "torch"}

# Where each route has run and matched the padded route (outputs and gradients), per device type. CPU: the
# test suite, which runs every route (tests/unit/test_routes.py, and the parity suite through each). A GPU
# session adds its lines from the output of scripts/gpu_check.sh (GPU, torch version, date).
SUITE = "CPU test suite (tests/unit/test_routes.py, tests/parity)"
VERIFIED: dict[str, dict[str, str]] = {
    "cpu": {route: SUITE for routes in ROUTES.values() for route in routes},
    "cuda": {},  # unverified: no GPU has run scripts/gpu_check.sh yet
}
# What "auto" prefers per device type, best first. CPU: one SDPA per row (its kernel launches are cheap) and
# three q/k/v products (stacking the weights cost more than it saved on the 2-core machine measured: XLM
# 1024-d forward 3.6% slower); oneDNN's matmul for inference. CUDA: the packed kernels and the fused GEMM.
PREFERRED = {
    "attention": {"cpu": ("per_row",), "cuda": ("varlen", "jagged", "grid")},
    "qkv": {"cpu": ("separate",), "cuda": ("fused",)},
    "linear": {"cpu": ("onednn",), "cuda": ()},
}
# Fewer projected rows than this (one token per step while decoding) keep three q/k/v products under "auto":
# stacking the weights would cost about as much as the products themselves.
FUSE_MIN_ROWS = 64
# Weights below this many elements keep F.linear under "auto": oneDNN's fixed cost per call (about 15 us)
# is more than MKL takes for them. A route named "onednn" takes every weight.
ONEDNN_MIN_WEIGHT = 1 << 16  # 256 x 256
ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class RouteError(ValueError):
    """A route asked for by name cannot take this call (the message says why and what can)."""


@dataclass(frozen=True)
class Facts:
    """What decides the routes of one call. dtype is the compute dtype (autocast's when it is on)."""

    device: str
    dtype: torch.dtype = torch.float32
    dropout: bool = False  # attention dropout in this call (training with attention_dropout > 0)
    causal: bool = False
    compiling: bool = False  # inside torch.compile, torch.export or tracing: shapes must not depend on data
    grad: bool = False  # a gradient is wanted (grad mode on and some parameter requires it)
    autocast: bool = False
    cache: bool = False  # a KV cache (decoding)
    padding: bool = True  # some position is padding (else nothing is worth packing)
    empty_row: bool = False
    rows: int = 0  # tokens projected in this call
    quantized: bool = False  # int8 / prepacked Linear layers (precision.py)


@dataclass(frozen=True)
class Routes:
    """The routes of one call. linear_min_weight: weights below it take F.linear ("auto"'s threshold)."""

    attention: str = "padded"
    qkv: str = "separate"
    linear: str = "torch"
    linear_min_weight: int = ONEDNN_MIN_WEIGHT

    def product(self, weight: torch.Tensor) -> str:
        """The backend of one product."""
        return self.linear if weight.numel() >= self.linear_min_weight else "torch"


def autocast_dtype(device: str) -> torch.dtype | None:
    """autocast's dtype on a device type where it is on, else None (torch < 2.4 has per-device calls)."""
    if device not in ("cpu", "cuda"):
        return None
    try:
        on = torch.is_autocast_enabled(device)
    except TypeError:  # torch < 2.4
        on = torch.is_autocast_cpu_enabled() if device == "cpu" else torch.is_autocast_enabled()
        return (torch.get_autocast_cpu_dtype() if device == "cpu" else torch.get_autocast_gpu_dtype()) if on else None
    return torch.get_autocast_dtype(device) if on else None


def varlen_kernel():
    """torch's variable-length FlashAttention (torch >= 2.10 with CUDA), or None where torch lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def _attention_unable(route: str, f: Facts) -> str | None:
    packed = route != "padded"
    if packed and f.cache:
        return "a KV cache (decoding) needs the padded route"
    if packed and f.compiling:
        return "compiled graphs need shapes that do not depend on the data (the padded route)"
    if route == "varlen" and f.device == "cuda":
        if f.dtype not in (torch.float16, torch.bfloat16):
            return f"the CUDA varlen kernel takes fp16/bf16, not {f.dtype}"
        if f.dropout:
            return "the varlen kernel has no attention dropout"
        if varlen_kernel() is None:
            return f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if route == "varlen" and f.device not in ("cuda", "cpu"):
        return f"no varlen kernel on {f.device}"
    if route == "jagged" and f.causal:
        return "nested-tensor SDPA takes no causal mask"
    if route == "jagged" and f.empty_row:
        return "nested tensors take no empty row"
    return None


def _qkv_unable(route: str, f: Facts) -> str | None:
    if route == "fused" and f.quantized:
        return "quantized layers keep three products"
    return None


def _linear_unable(route: str, f: Facts) -> str | None:
    if route != "onednn":
        return None
    for failed, why in ((not ONEDNN_AVAILABLE, "this torch build has no oneDNN matmul"),
                        (f.device != "cpu", f"oneDNN's matmul runs on the CPU, not {f.device}"),
                        (f.dtype != torch.float32 or f.autocast, "oneDNN's matmul here is fp32 without autocast"),
                        (f.grad, "oneDNN's matmul has no backward (use it under torch.no_grad)"),
                        (f.compiling, "compiled graphs leave the products to the compiler")):
        if failed:
            return why
    return None


UNABLE = {"attention": _attention_unable, "qkv": _qkv_unable, "linear": _linear_unable}


def unable(kind: str, route: str, facts: Facts) -> str | None:
    """Why `route` cannot take a call with these facts, or None when it can."""
    return UNABLE[kind](route, facts)


def _auto(kind: str, facts: Facts, verified: dict[str, dict[str, str]]) -> str:
    if kind == "attention" and not facts.padding:
        return "padded"  # nothing to skip: the grid is the dense batch
    if kind == "qkv" and facts.rows < FUSE_MIN_ROWS:
        return "separate"
    on_device = verified.get(facts.device, {})
    for route in PREFERRED[kind].get(facts.device, ()):
        if route in on_device and unable(kind, route, facts) is None:
            return route
    return REFERENCE[kind]


def choose_one(kind: str, setting: str, facts: Facts, verified: dict[str, dict[str, str]] | None = None) -> str:
    """The route of one kind for a call: `setting` ("auto" or a route name) under `facts`; `verified` is the
    table "auto" trusts (VERIFIED unless given)."""
    verified = VERIFIED if verified is None else verified
    if setting == "auto":
        return _auto(kind, facts, verified)
    if setting not in ROUTES[kind]:
        raise RouteError(f"{kind} route {setting!r} is unknown; choose auto or one of {', '.join(ROUTES[kind])}")
    why = unable(kind, setting, facts)
    if why is not None:
        can = [r for r in ROUTES[kind] if unable(kind, r, facts) is None]
        raise RouteError(f"{kind} route {setting!r} cannot take this call: {why}; routes that can: {', '.join(can)}")
    if setting not in verified.get(facts.device, {}) and not facts.compiling:
        _note(f"{kind} route {setting!r} has not been verified on {facts.device} (xlmlib.routes.VERIFIED)")
    return setting


def choose(settings: dict[str, str], facts: Facts, verified: dict[str, dict[str, str]] | None = None) -> Routes:
    """The routes of one call, from the model's settings ({"attention": ..., "qkv": ..., "linear": ...})."""
    routes = Routes(attention=choose_one("attention", settings["attention"], facts, verified),
                    qkv=choose_one("qkv", settings["qkv"], facts, verified),
                    linear=choose_one("linear", settings["linear"], facts, verified),
                    linear_min_weight=ONEDNN_MIN_WEIGHT if settings["linear"] == "auto" else 0)
    if not facts.compiling:  # logging inside a compiled graph would break it
        for kind in ROUTES:
            _log_once(kind, getattr(routes, kind), facts.device)
    return routes


def check_setting(kind: str, value: str) -> str:
    """A setting's value, refused when it names no route (at assignment, before any call)."""
    if value != "auto" and value not in ROUTES[kind]:
        raise RouteError(f"{kind} must be auto or one of {', '.join(ROUTES[kind])}, got {value!r}")
    return value


_SAID: set[str] = set()


def reset_log() -> None:
    """Forget which routes and notes were logged, so that the next calls say them again."""
    _SAID.clear()


def _note(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        logger.warning(message)


def _log_once(kind: str, route: str, device: str) -> None:
    key = f"{kind}:{route}:{device}"
    if key not in _SAID:
        _SAID.add(key)
        logger.info("%s route: %s on %s", kind, route, device)


def verified_table() -> list[str]:
    """The VERIFIED table as text lines, "route  device: where" ("unverified" where nothing ran)."""
    lines = []
    for kind, routes in ROUTES.items():
        for route in routes:
            for device in sorted(VERIFIED):
                lines.append(f"{kind:<10} {route:<9} {device:<5} {VERIFIED[device].get(route, 'unverified')}")
    return lines
