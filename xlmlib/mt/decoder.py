"""The translation decoder: the encoder's layers plus cross-attention to the encoder output.

Built from model.py's parts (Embeddings, SelfAttention, FeedForward, Layer, Transformer); what it adds is
the original XLM decoder's (shared/reference/xlm-mt.md section 1, TransformerModel with is_decoder=True):
per layer, after the causal self-attention, h = LN15(h + Drop(CrossAttn(q=h, k=v=encoder output))), with
its own LayerNorm (`cross_norm`), and an output projection tied to the decoder's own token table.
Shape legend as in model.py; S here is the source length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import KVCache, SelfAttention
from ..config import ModelConfig
from ..heads import LMHead
from ..layout import Layout, attention_bias
from ..model import Layer, Transformer
from ..routes import Routes

Memory = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of the encoder output (B H S K)


class CrossAttention(SelfAttention):
    """Queries from the decoder, keys and values from the encoder output. The key/value projections of
    the encoder output do not change while decoding, so `memory()` computes them once per source batch."""

    def memory(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, D = enc.shape
        split = (B, S, self.n_heads, D // self.n_heads)
        return self.k_proj(enc).view(split).transpose(1, 2), self.v_proj(enc).view(split).transpose(1, 2)

    def forward(self, x, bias, memory, routes: Routes | None = None):
        B, T, D = x.shape
        q = self.q_proj(x, routes).view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # B H T K
        k, v = memory
        p = self.p_drop if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        return self.out_proj(ctx.transpose(1, 2).reshape(B, T, D), routes)


class DecoderLayer(Layer):
    """Self-attention (causal), then cross-attention, then the feed-forward, each through Layer.residual."""

    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__(cfg, index)
        self.cross_attn = CrossAttention(cfg, index)
        self.cross_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x, layout: Layout, cache=None, memory=None, memory_bias=None):
        x = self.residual(x, self.attn_norm, lambda h: self.attn(h, layout, cache))
        x = self.residual(x, self.cross_norm, lambda h: self.cross_attn(h, memory_bias, memory, layout.routes))
        return self.residual(x, self.ffn_norm, lambda h: self.ffn(h, layout.routes))


class Decoder(Transformer):
    """Causal Transformer over the target with cross-attention layers and its own tied LM head. Its
    cross-attention reads the target on the B T grid, so it keeps the padded attention route."""

    layer_class = DecoderLayer
    packs_padding = False

    def __init__(self, config: ModelConfig):
        super().__init__(config.replace(causal=True))
        self.lm_head = LMHead(self.config)

    def memory(self, enc: torch.Tensor) -> Memory:
        """Cross-attention keys and values of the encoder output, for every layer (computed once)."""
        return [layer.cross_attn.memory(enc) for layer in self.layers]

    def decode(self, input_ids, memory: Memory, source_mask, attention_mask=None, langs=None,
               cache: KVCache | None = None) -> torch.Tensor:
        """Hidden states (B T D) of the target tokens; `source_mask` (B S, True = real) masks the source
        padding for the cross-attention; `cache` holds earlier target tokens (one step at a time)."""
        layout = self.plan(input_ids, attention_mask, cache)
        positions = self._default_positions(input_ids, layout.past)
        langs = self._checked_inputs(input_ids, langs, positions, None, validate=True)
        x = self.embed(input_ids, positions, langs, None)
        # XLM: `tensor *= mask` after the embeddings and after every layer (xlm-mt.md section 1, step 4).
        row_mask = layout.row_mask(x.dtype)
        if row_mask is not None:
            x = x * row_mask
        memory_bias = attention_bias(source_mask.bool()[:, None, None, :].to(x.device), x.dtype)
        for layer, mem in zip(self.layers, memory):
            x = layer(x, layout, cache, mem, memory_bias)
            if row_mask is not None:
                x = x * row_mask
        return self.final_norm(x) if self.final_norm is not None else x

    def logits(self, h: torch.Tensor, routes: Routes | None = None) -> torch.Tensor:
        return self.lm_head(h, self.embed.tokens, routes)
