"""Attention paths: padded SDPA (with a KV cache for decoding) and packed real tokens (no padding).

Shape legend as in model.py: B batch, T tokens in this call, S tokens attended, D width, H heads,
K head width (D / H), N real (non-padding) tokens of a batch.

A padded batch runs its dense parts (projections, FFN, LayerNorm) on the N real tokens only (Packing).
Attention over packed tokens takes one of four routes, chosen per call:
- varlen: one variable-length FlashAttention kernel over the packed tokens (CUDA, fp16/bf16, no
  attention dropout: torch.nn.attention.varlen.varlen_attn has no dropout), no padded work at all;
- per_row: one SDPA per row on that row's real tokens (CPU, where a kernel launch costs little);
- jagged: SDPA over nested tensors of the jagged layout (torch.nested, a prototype API), whose CUDA
  kernels take the packed tokens as they are, with attention dropout and in fp32 too (CUDA otherwise);
- grid: scatter back into the B T grid and run one masked SDPA (causal attention outside varlen, which
  nested tensors do not take, and a batch with an empty row).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .linear import Linear, linear


class KVCache:
    """Keys and values of earlier tokens, per layer, for one-token-at-a-time decoding."""

    def __init__(self):
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer in self.keys:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the rows named by index (beam search)."""
        for layer in self.keys:
            self.keys[layer] = self.keys[layer].index_select(0, index)
            self.values[layer] = self.values[layer].index_select(0, index)


def attention_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask from a boolean one (True = may attend): 0 where allowed, the dtype's minimum elsewhere (as HF)."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


class SelfAttention(nn.Module):
    # Where q, k, v are one GEMM (project). Not on CPU: on the 2-core machine this project measures, the
    # stacking copy cost more than the wider product saved (XLM 1024-d forward at 4x256: 3.6% slower).
    fuse_devices: tuple[str, ...] = ("cuda",)
    # Fewer rows than this (one token per step while decoding) project q, k, v separately: stacking the
    # weights would then cost about as much as the products themselves.
    fuse_min_rows = 64

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer, self.n_heads, self.p_drop = layer, cfg.n_heads, cfg.attention_dropout
        self.q_proj = Linear(cfg.dim, cfg.dim)
        self.k_proj = Linear(cfg.dim, cfg.dim)
        self.v_proj = Linear(cfg.dim, cfg.dim)
        self.out_proj = Linear(cfg.dim, cfg.dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of x (... D each) in one GEMM over the stacked weights (fused QKV). The parameters stay
        three Linear layers, so every checkpoint format and table keeps its names; stacking copies 3 D D
        weights per call, small next to the product for a batch of tokens (and under autocast it replaces
        three weight casts by one). Quantized layers (quantize.py), few rows and devices outside fuse_devices
        keep three products."""
        projections = (self.q_proj, self.k_proj, self.v_proj)
        fuse = x.device.type in self.fuse_devices and x.numel() >= self.fuse_min_rows * x.shape[-1]
        if not fuse or not all(type(p) is Linear for p in projections):
            return self.q_proj(x), self.k_proj(x), self.v_proj(x)
        weight = torch.cat([p.weight for p in projections])
        bias = torch.cat([p.bias for p in projections])
        return linear(x, weight, bias).chunk(3, dim=-1)

    def forward(self, x, bias, cache: KVCache | None = None, packing: Packing | None = None):
        """x is B T D, or N D (real tokens only) when `packing` says where they sit in the B T grid."""
        q, k, v = self.project(x)
        p = self.p_drop if self.training else 0.0
        if packing is not None:
            return self.out_proj(packing.attend(q, k, v, self.n_heads, p))
        B, T, D = q.shape
        split = (B, T, self.n_heads, D // self.n_heads)
        q, k, v = (t.view(split).transpose(1, 2) for t in (q, k, v))  # B H T K
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # B H S K
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p).transpose(1, 2)  # B T H K
        return self.out_proj(ctx.reshape(B, T, D))


def varlen_kernel():
    """torch's variable-length FlashAttention (torch >= 2.10 with CUDA), or None where torch lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


class Packing:
    """Where the real tokens of a padded B T batch sit, as flat indices (row-major, so each row's tokens
    are contiguous in N and keep their order: a causal mask among them is the grid's causal mask) and
    as cumulative lengths (cu_seqlens, the varlen kernels' description of a packed batch).

    Building one reads the lengths (N and the longest row follow): one host synchronisation, or none when
    the caller holds the mask on the CPU (host). Everything after it runs without one."""

    per_row_devices: tuple[str, ...] = ("cpu",)
    varlen_devices: tuple[str, ...] = ("cuda",)
    varlen_dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)
    jagged_devices: tuple[str, ...] = ("cuda",)

    def __init__(self, keep: torch.Tensor, *, causal: bool = False, host: torch.Tensor | None = None):
        """keep: B T (True = real) on the model's device; host: the same on the CPU, when the caller has it,
        which makes building this free of device synchronisation."""
        self.B, self.T = keep.shape
        self.causal = causal
        src = host if host is not None else keep
        lengths = src.sum(1)
        self.lengths = lengths.tolist()  # a host synchronisation unless src is on the CPU
        self.n = sum(self.lengths)
        self.max_len = max(self.lengths)
        index = torch.nonzero_static(src.reshape(-1), size=self.n).squeeze(1)
        self.index = index.to(keep.device, non_blocking=True)
        self.rows, self.cols = self.index // self.T, self.index % self.T
        cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
        self.cu_seqlens = cu_seqlens.to(keep.device, non_blocking=True)
        self._keep, self._grid_bias, self._offsets = keep, None, None

    def route(self, q: torch.Tensor, dropout_p: float) -> str:
        """"varlen", "per_row", "jagged" or "grid" (module docstring)."""
        device = q.device.type
        if device in self.varlen_devices and q.dtype in self.varlen_dtypes and not dropout_p and varlen_kernel():
            return "varlen"
        if device in self.per_row_devices:
            return "per_row"
        # Nested-tensor SDPA takes no causal mask, nor an empty row (an empty component).
        jagged = device in self.jagged_devices and not self.causal and min(self.lengths) > 0
        return "jagged" if jagged else "grid"

    def attend(self, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
        """N D projections -> N D attention context, each row attending to its own real tokens only."""
        route = self.route(q, dropout_p)
        if route == "varlen":
            return self._attend_varlen(q, k, v, n_heads)
        if route == "per_row":
            return self._attend_per_row(q, k, v, n_heads, dropout_p)
        if route == "jagged":
            return self._attend_jagged(q, k, v, n_heads, dropout_p)
        return self._attend_grid(q, k, v, n_heads, dropout_p)

    def _attend_varlen(self, q, k, v, n_heads: int) -> torch.Tensor:
        N, D = q.shape
        q, k, v = (t.view(N, n_heads, D // n_heads) for t in (q, k, v))  # N H K
        window = (-1, 0) if self.causal else (-1, -1)
        ctx = varlen_kernel()(q, k, v, self.cu_seqlens, self.cu_seqlens, self.max_len, self.max_len,
                              window_size=window)
        return ctx.reshape(N, D)

    def _attend_per_row(self, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
        D = q.shape[1]
        out, start = torch.empty_like(q), 0
        for length in self.lengths:
            if length:
                rows = slice(start, start + length)
                qb, kb, vb = (t[rows].view(1, length, n_heads, D // n_heads).transpose(1, 2) for t in (q, k, v))
                ctx = F.scaled_dot_product_attention(qb, kb, vb, dropout_p=dropout_p, is_causal=self.causal)
                out[rows] = ctx.transpose(1, 2).reshape(length, D)
            start += length
        return out

    def _attend_jagged(self, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
        N, D = q.shape
        if self._offsets is None:  # one offsets tensor: q, k and v then share their ragged dimension
            self._offsets = self.cu_seqlens.long()
        # The lengths are known on the host, so the nested tensors need not read them back from the device.
        q, k, v = (torch.nested.nested_tensor_from_jagged(
            t.view(N, n_heads, D // n_heads), self._offsets, min_seqlen=min(self.lengths), max_seqlen=self.max_len,
        ).transpose(1, 2) for t in (q, k, v))  # B H j K
        ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=self.causal)
        return ctx.transpose(1, 2).values().reshape(N, D)

    def _attend_grid(self, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
        q, k, v = self.unpack(q, k, v)
        B, T, D = q.shape
        q, k, v = (t.view(B, T, n_heads, D // n_heads).transpose(1, 2) for t in (q, k, v))  # B H T K
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=self.grid_bias(q.dtype), dropout_p=dropout_p)
        return self.gather(ctx.transpose(1, 2))  # B T H K -> N D

    def grid_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """B 1 T T additive mask of the grid route, built once per forward (every layer shares it)."""
        if self._grid_bias is None or self._grid_bias.dtype != dtype:
            allowed = self._keep[:, None, None, :]
            if self.causal:
                pos = torch.arange(self.T, device=allowed.device)
                allowed = allowed & (pos[None, :] <= pos[:, None])
            self._grid_bias = attention_bias(allowed, dtype)
        return self._grid_bias

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """B T (ids) -> N, or B T D -> N D: the real positions only."""
        return x.reshape(self.B * self.T, *x.shape[2:]).index_select(0, self.index)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """B T ... (any strides) -> N D in one copy (no contiguous B T D copy first)."""
        return x[self.rows, self.cols].reshape(self.n, -1)

    def unpack(self, *xs: torch.Tensor):
        """N D tensors -> B T D with zeros at the padded positions (one buffer for all of them)."""
        out = xs[0].new_zeros(len(xs), self.B * self.T, xs[0].shape[-1])
        for i, x in enumerate(xs):
            out[i].index_copy_(0, self.index, x)
        grids = out.view(len(xs), self.B, self.T, -1).unbind(0)
        return grids if len(xs) > 1 else grids[0]
