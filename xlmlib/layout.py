"""The padding layout of one forward and the routes chosen for it, in one object (Layout).

Shape legend as in model.py: B batch, T tokens in this call, S tokens attended (cached + new), D width,
N real (non-padding) tokens of a batch.

Everything a forward needs to know about padding lives here, built once per call: the key mask on the
model's device (`keep`, B S, True = attend) and, when the caller passed it on the CPU, its host copy
(`host`), from which the layout is read without a device synchronisation; the Packing of the real tokens
(routes other than "padded"); the additive mask of the padded route (`bias`); whether padded rows are
zeroed (XLM). The routes come from routes.choose, once per call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .routes import Routes


def attention_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask from a boolean one (True = may attend): 0 where allowed, the dtype's minimum elsewhere (as HF)."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


class Packing:
    """Where the real tokens of a padded B T batch sit, as flat indices (row-major, so each row's tokens
    are contiguous in N and keep their order: a causal mask among them is the grid's causal mask) and
    as cumulative lengths (cu_seqlens, the varlen kernels' description of a packed batch).

    Building one reads the lengths (N and the longest row follow): one host synchronisation, or none when
    the caller holds the mask on the CPU (host). Everything after it runs without one."""

    def __init__(self, keep: torch.Tensor, *, causal: bool = False, host: torch.Tensor | None = None):
        self.B, self.T = keep.shape
        self.causal = causal
        src = host if host is not None else keep
        lengths = src.sum(1)
        self.lengths = lengths.tolist()  # a host synchronisation unless src is on the CPU
        self.n = sum(self.lengths)
        self.max_len = max(self.lengths, default=0)
        index = torch.nonzero_static(src.reshape(-1), size=self.n).squeeze(1)
        self.index = index.to(keep.device, non_blocking=True)
        self.rows, self.cols = self.index // self.T, self.index % self.T
        cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
        self.cu_seqlens = cu_seqlens.to(keep.device, non_blocking=True)
        self.keep, self._grid_bias = keep, None

    def grid_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """B 1 T T additive mask of the grid route, built once per forward (every layer shares it)."""
        if self._grid_bias is None or self._grid_bias.dtype != dtype:
            allowed = self.keep[:, None, None, :]
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


@dataclass
class Layout:
    """One forward's padding layout and routes. `packing` is set on every route but "padded"; `allowed`
    (B 1 T S, True = may attend; None when nothing is masked) only on the padded one, whose additive mask
    bias(dtype) is built from it once; `zero_rows` multiplies padded rows by 0 after the embeddings and every
    layer (XLM's `tensor *= mask`; moot once padding is packed away)."""

    keep: torch.Tensor
    routes: Routes
    host: torch.Tensor | None = None
    past: int = 0
    packing: Packing | None = None
    allowed: torch.Tensor | None = None
    zero_rows: bool = False
    _cached: dict = field(default_factory=dict, repr=False)

    def bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        """The padded route's additive mask in `dtype` (every layer shares it), or None."""
        if self.allowed is None:
            return None
        if ("bias", dtype) not in self._cached:
            self._cached[("bias", dtype)] = attention_bias(self.allowed, dtype)
        return self._cached[("bias", dtype)]

    def row_mask(self, dtype: torch.dtype) -> torch.Tensor | None:
        """B T 1 of 1.0 on real new tokens, 0.0 on padding, where rows are zeroed; else None."""
        if not self.zero_rows:
            return None
        if ("rows", dtype) not in self._cached:
            self._cached[("rows", dtype)] = self.keep[:, self.past:, None].to(dtype)
        return self._cached[("rows", dtype)]
