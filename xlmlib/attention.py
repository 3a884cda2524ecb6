"""Self-attention and the kernels of each attention route (routes.py says what each route is and when it
runs; layout.py holds the padding layout they read).

Shape legend as in model.py: B batch, T tokens in this call, S tokens attended, D width, H heads,
K head width (D / H), N real (non-padding) tokens of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layout import Layout, Packing
from .linear import Linear, linear
from .routes import Routes, varlen_kernel


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


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer, self.n_heads, self.p_drop = layer, cfg.n_heads, cfg.attention_dropout
        self.q_proj = Linear(cfg.dim, cfg.dim)
        self.k_proj = Linear(cfg.dim, cfg.dim)
        self.v_proj = Linear(cfg.dim, cfg.dim)
        self.out_proj = Linear(cfg.dim, cfg.dim)

    def project(self, x: torch.Tensor, routes: Routes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of x (... D each): three products, or one GEMM over the stacked weights (routes.qkv
        "fused"). The parameters stay three Linear layers, so every checkpoint format and table keeps its
        names; stacking copies 3 D D weights per call, small next to the product for a batch of tokens (and
        under autocast it replaces three weight casts by one)."""
        if routes.qkv == "separate":
            return self.q_proj(x, routes), self.k_proj(x, routes), self.v_proj(x, routes)
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        return linear(x, weight, bias, routes=routes).chunk(3, dim=-1)

    def forward(self, x, layout: Layout, cache: KVCache | None = None):
        """x is B T D, or N D (real tokens only) when the layout packs them."""
        q, k, v = self.project(x, layout.routes)
        p = self.p_drop if self.training else 0.0
        if layout.packing is not None:
            ctx = PACKED[layout.routes.attention](layout.packing, q, k, v, self.n_heads, p)
            return self.out_proj(ctx, layout.routes)
        B, T, D = q.shape
        split = (B, T, self.n_heads, D // self.n_heads)
        q, k, v = (t.view(split).transpose(1, 2) for t in (q, k, v))  # B H T K
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # B H S K
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.bias(q.dtype), dropout_p=p).transpose(1, 2)  # B T H K
        return self.out_proj(ctx.reshape(B, T, D), layout.routes)


# -- the packed routes: N D projections -> N D context, each row attending to its own real tokens only ----
def attend_varlen(packing: Packing, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
    """One variable-length kernel over the packed tokens: torch's FlashAttention varlen on CUDA, the
    reference kernel (one SDPA per sequence of cu_seqlens) elsewhere."""
    N, D = q.shape
    q, k, v = (t.view(N, n_heads, D // n_heads) for t in (q, k, v))  # N H K
    kernel = varlen_kernel() if q.device.type == "cuda" else reference_varlen
    window = (-1, 0) if packing.causal else (-1, -1)
    ctx = kernel(q, k, v, packing.cu_seqlens, packing.cu_seqlens, packing.max_len, packing.max_len,
                 window_size=window)
    return ctx.reshape(N, D)


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, window_size):
    """What torch.nn.attention.varlen.varlen_attn computes (N H K packed tensors, int32 cumulative lengths,
    window (-1, 0) = causal), as one SDPA per sequence: the varlen route's kernel where torch has none."""
    out = torch.empty_like(q)
    for start, end in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        if end > start:
            qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # H L K
            ctx = F.scaled_dot_product_attention(qs, ks, vs, is_causal=window_size == (-1, 0))
            out[start:end] = ctx.transpose(0, 1)
    return out


def attend_per_row(packing: Packing, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
    D = q.shape[1]
    out, start = torch.empty_like(q), 0
    for length in packing.lengths:
        if length:
            rows = slice(start, start + length)
            qb, kb, vb = (t[rows].view(1, length, n_heads, D // n_heads).transpose(1, 2) for t in (q, k, v))
            ctx = F.scaled_dot_product_attention(qb, kb, vb, dropout_p=dropout_p, is_causal=packing.causal)
            out[rows] = ctx.transpose(1, 2).reshape(length, D)
        start += length
    return out


def attend_jagged(packing: Packing, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
    N, D = q.shape
    offsets = packing.cu_seqlens.long()  # one offsets tensor: q, k and v then share their ragged dimension
    # The lengths are known on the host, so the nested tensors need not read them back from the device.
    q, k, v = (torch.nested.nested_tensor_from_jagged(
        t.view(N, n_heads, D // n_heads), offsets, min_seqlen=min(packing.lengths), max_seqlen=packing.max_len,
    ).transpose(1, 2) for t in (q, k, v))  # B H j K
    ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=packing.causal)
    return ctx.transpose(1, 2).values().reshape(N, D)


def attend_grid(packing: Packing, q, k, v, n_heads: int, dropout_p: float) -> torch.Tensor:
    q, k, v = packing.unpack(q, k, v)
    B, T, D = q.shape
    q, k, v = (t.view(B, T, n_heads, D // n_heads).transpose(1, 2) for t in (q, k, v))  # B H T K
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=packing.grid_bias(q.dtype), dropout_p=dropout_p)
    return packing.gather(ctx.transpose(1, 2))  # B T H K -> N D


PACKED = {"varlen": attend_varlen, "per_row": attend_per_row, "jagged": attend_jagged, "grid": attend_grid}
