"""The encoder shared by XLM, XLM-R and XLM-R XL/XXL.

Shape legend: B batch, T tokens in this call, S tokens attended (cached + new), D model width,
H attention heads, K head width (D / H), F feed-forward width, V vocabulary, C choices.

Everything family-specific is a ModelConfig value: post- or pre-LayerNorm (pre_norm), embedding
LayerNorm (embed_norm), position numbering (position_offset), zeroed padding rows (zero_pad_rows),
language and token-type tables (n_langs / use_lang_emb / type_vocab_size).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .attention import KVCache, Packing, SelfAttention, attention_bias
from .config import ModelConfig
from .linear import Linear


@dataclass
class Output:
    """What every model returns; fields that mean nothing for a model stay None."""

    last_hidden_state: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    pooled: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    cache: KVCache | None = None
    # Beam-search span prediction (QuestionAnsweringBeam without labels).
    start_top_log_probs: torch.Tensor | None = None
    start_top_index: torch.Tensor | None = None
    end_top_log_probs: torch.Tensor | None = None
    end_top_index: torch.Tensor | None = None
    cls_logits: torch.Tensor | None = None


def sinusoidal_table(n_positions: int, dim: int) -> torch.Tensor:
    """XLM's fixed table: angle p / 10000^(2*floor(j/2)/D), sin on even j, cos on odd j (computed in float64)."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class Embeddings(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_index)
        # XLM-R reserves position row offset-1 for padding (HF padding_idx=1); XLM's table has no padding row.
        pos_pad = cfg.position_offset - 1 if cfg.position_offset else None
        self.positions = nn.Embedding(cfg.max_positions, cfg.dim, padding_idx=pos_pad)
        if cfg.sinusoidal:
            self.positions.weight.requires_grad_(False)
        self.langs = nn.Embedding(cfg.n_langs, cfg.dim) if cfg.has_lang_emb else None
        self.token_types = nn.Embedding(cfg.type_vocab_size, cfg.dim) if cfg.type_vocab_size else None
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if cfg.embed_norm else None
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids, positions, langs, token_type_ids):
        x = self.tokens(input_ids)
        if self.token_types is not None:
            types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            x = x + self.token_types(types)
        elif token_type_ids is not None:
            # modeling_xlm quirk: XLM has no token-type table and adds the *word* vectors of the type ids.
            x = x + self.tokens(token_type_ids)
        x = x + self.positions(positions)
        if self.langs is not None and langs is not None:
            x = x + self.langs(langs)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = Linear(cfg.dim, cfg.ffn_dim)
        self.fc2 = Linear(cfg.ffn_dim, cfg.dim)
        self.activation = cfg.activation

    def forward(self, x):
        return self.fc2(self.fc1(x, activation=self.activation))


class Layer(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.attn = SelfAttention(cfg, index)
        self.attn_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def residual(self, x, norm: nn.Module, sublayer):
        """One sub-layer with its residual and LayerNorm: pre-LN (XLM-R XL/XXL, modeling_xlm_roberta_xl)
        or post-LN. The translation decoder (decoder.py) adds its cross-attention through this too."""
        if self.pre_norm:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))

    def forward(self, x, bias, cache=None, packing=None):
        x = self.residual(x, self.attn_norm, lambda h: self.attn(h, bias, cache, packing))
        return self.residual(x, self.ffn_norm, self.ffn)


class Transformer(nn.Module):
    """Embeddings + layers (+ final norm for pre-LN). Task models in heads.py extend this class, so the
    parameter names stay `embed.*`, `layers.{i}.*`, `final_norm` for every model."""

    layer_class: type[nn.Module] = Layer  # the translation decoder swaps in its cross-attention layer

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config)
        self.layers = nn.ModuleList(self.layer_class(config, i) for i in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.dim, eps=config.norm_eps) if config.pre_norm else None
        self.causal = config.causal
        self.gradient_checkpointing = False
        # Skip padding in the dense parts (see Packing). Real tokens are unchanged (<= 1e-5); padded rows
        # come out as zeros instead of the reference's unused values. False gives the reference layout.
        self.skip_padding = True
        # Range checks of ids, positions and language ids read values, i.e. synchronise with a GPU; a caller
        # that checked its batch on the host (check_inputs) turns them off.
        self.validate_inputs = True
        self._warned_langs = False

    def encode(self, input_ids, attention_mask=None, langs=None, positions=None, token_type_ids=None,
               output_hidden_states=False, cache: KVCache | None = None):
        """Run the encoder; returns (last hidden state B T D, hidden states or None)."""
        cfg = self.config
        past = cache.length if cache is not None else 0
        keep, host = self._key_mask(input_ids, attention_mask, past)  # B S (True = attend)
        if positions is None:
            positions = self._default_positions(input_ids, past)
        langs = self._check_inputs(input_ids, langs, positions, token_type_ids)
        n_new = input_ids.shape[1]
        packing = self._packing(keep, host, cache)
        if packing is not None:  # N real tokens from the embedding on; zeroing pad rows is moot, they are gone
            input_ids, positions, langs, token_type_ids = (
                None if t is None else packing.pack(t) for t in (input_ids, positions, langs, token_type_ids))
        x = self.embed(input_ids, positions, langs, token_type_ids)
        row_mask = keep[:, past:, None].to(x.dtype) if cfg.zero_pad_rows and packing is None else None
        if row_mask is not None:
            x = x * row_mask
        # Packed attention builds its own mask where its route needs one (attention.py).
        bias = None if packing is not None else self._attention_bias(keep, n_new, past, x.dtype, host)
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, bias, cache, packing, use_reentrant=False)
            else:
                x = layer(x, bias, cache, packing)
            if row_mask is not None:
                x = x * row_mask
            if hidden is not None:
                hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if hidden is not None:  # as modeling_xlm_roberta_xl: the last entry is after the final norm
                hidden[-1] = x
        if packing is not None:
            x = packing.unpack(x)
            hidden = [packing.unpack(h) for h in hidden] if hidden is not None else None
        return x, (tuple(hidden) if hidden is not None else None)

    def _packing(self, keep, host, cache):
        """A Packing when padding is worth skipping: eager mode (shapes depend on the data), no cache."""
        if not self.skip_padding or cache is not None or torch.compiler.is_compiling() or _all(keep, host):
            return None
        return Packing(keep, causal=self.causal, host=host)

    def _key_mask(self, input_ids, attention_mask, past):
        """(keep B S on the model's device, the same readable without a device sync or None). An
        attention_mask given on the CPU for inputs on a GPU is that host copy: the padding layout is then
        read from it, and the forward needs no host synchronisation (the trainer passes it so)."""
        keep = self._keep(input_ids, attention_mask, past)
        host = keep if keep.device.type == "cpu" else None
        return keep.to(input_ids.device, non_blocking=True), host

    def _keep(self, input_ids, attention_mask, past):
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, tokens), got {tuple(input_ids.shape)}")
        if attention_mask is None:
            # Unlike HF XLM-R (which then attends to pads), padding is never attended by default.
            keep = input_ids != self.config.pad_index
            if past:
                keep = torch.cat([keep.new_ones(keep.shape[0], past), keep], dim=1)
            return keep
        expected = (input_ids.shape[0], past + input_ids.shape[1])
        if tuple(attention_mask.shape) != expected:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {expected}")
        return attention_mask.bool()

    def _default_positions(self, input_ids, past):
        offset = self.config.position_offset
        if offset:
            # modeling_xlm_roberta create_position_ids_from_input_ids: real tokens count from offset, pads sit at offset-1.
            real = (input_ids != self.config.pad_index).long()
            return (torch.cumsum(real, dim=1) + past) * real + (offset - 1)
        return torch.arange(past, past + input_ids.shape[1], device=input_ids.device).expand_as(input_ids)

    def _attention_bias(self, keep, n_new, past, dtype, host=None):
        """Additive mask B 1 T S: 0 where attention is allowed, the dtype's minimum elsewhere (as HF)."""
        allowed = keep[:, None, None, :]
        if self.causal:
            q = torch.arange(past, past + n_new, device=keep.device)[:, None]
            k = torch.arange(keep.shape[1], device=keep.device)[None, :]
            allowed = allowed & (k <= q)
        elif not torch.compiler.is_compiling() and _all(keep, host):
            return None  # nothing to mask: let SDPA pick its fastest kernel
        return attention_bias(allowed, dtype)

    def check_inputs(self, input_ids, langs=None, positions=None, token_type_ids=None) -> None:
        """The range checks of a forward, on tensors of any device (the trainer runs them on its CPU batch,
        then sets validate_inputs False so that the GPU forward needs no host synchronisation)."""
        if positions is None:
            positions = self._default_positions(input_ids, 0)
        self._checked_inputs(input_ids, langs, positions, token_type_ids, validate=True)

    def _check_inputs(self, input_ids, langs, positions, token_type_ids):
        validate = self.validate_inputs and not torch.compiler.is_compiling()
        return self._checked_inputs(input_ids, langs, positions, token_type_ids, validate)

    def _checked_inputs(self, input_ids, langs, positions, token_type_ids, validate: bool):
        cfg = self.config
        if validate:
            _check_range("input_ids", input_ids, cfg.vocab_size, "vocabulary size")
            top = int(positions.max()) if positions.numel() else 0
            if top >= cfg.max_positions:
                raise ValueError(
                    f"input is too long: position {top} needs more than the {cfg.max_positions} rows of the position "
                    f"table; this model takes at most {cfg.max_tokens} tokens (position offset {cfg.position_offset})")
            if token_type_ids is not None:
                limit = cfg.type_vocab_size or cfg.vocab_size
                _check_range("token_type_ids", token_type_ids, limit, "token-type table size")
        return self._langs_tensor(input_ids, langs, validate)

    def _langs_tensor(self, input_ids, langs, validate: bool):
        cfg = self.config
        if not cfg.has_lang_emb:
            if langs is not None and not self._warned_langs:
                self._warned_langs = True
                warnings.warn("this model has no language embeddings; `langs` is ignored", stacklevel=4)
            return None
        if langs is None:
            codes = ", ".join(f"{c}={i}" for i, c in enumerate(cfg.langs)) or f"0..{cfg.n_langs - 1}"
            raise ValueError(f"this model has language embeddings and needs `langs` (language ids: {codes})")
        langs = torch.as_tensor(_lang_codes_to_ids(langs, cfg), device=input_ids.device)
        if langs.dim() < 2:  # one id for everything, or one per sequence
            langs = langs.reshape(-1, 1).expand_as(input_ids)
        if validate:
            _check_range("langs", langs, cfg.n_langs, "number of languages")
        return langs


def _all(keep, host) -> bool:
    """Whether every position is real, read from the host copy when there is one (no device sync)."""
    return bool((host if host is not None else keep).all())


def _check_range(name, ids, limit, what):
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= limit:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} contains {bad}, outside [0, {limit - 1}] ({what} {limit})")


def init_weights(module: nn.Module, std: float) -> None:
    """Initialisation for modules that do not come from a checkpoint (new models, new heads)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def fill_sinusoidal(embed: Embeddings) -> None:
    with torch.no_grad():
        embed.positions.weight.copy_(sinusoidal_table(*embed.positions.weight.shape))


def _lang_codes_to_ids(langs, cfg):
    """langs="en" (or one code per row) becomes ids through the config's language list; a model that does
    not name its languages cannot map a code, so it says which ids it takes instead of torch's TypeError."""
    codes = [langs] if isinstance(langs, str) else langs
    if not isinstance(codes, (list, tuple)) or not codes or not all(isinstance(c, str) for c in codes):
        return langs
    if not cfg.langs:
        raise ValueError(f"langs={langs!r}: this model does not name its languages; pass language ids "
                         f"0..{cfg.n_langs - 1} instead of codes")
    unknown = sorted({c for c in codes if c not in cfg.lang2id})
    if unknown:
        raise ValueError(f"unknown language {', '.join(map(repr, unknown))}; this model knows: {', '.join(cfg.langs)}")
    ids = [cfg.lang2id[c] for c in codes]
    return ids[0] if isinstance(langs, str) else ids
