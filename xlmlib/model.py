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

from .attention import KVCache, SelfAttention
from .config import ModelConfig
from .layout import Layout, Packing
from .linear import Linear
from .routes import Facts, Routes, autocast_dtype, check_setting, choose


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

    def forward(self, x, routes: Routes | None = None):
        return self.fc2(self.fc1(x, routes, activation=self.activation), routes)


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
        or post-LN. The translation decoder (mt/model.py) adds its cross-attention through this too."""
        if self.pre_norm:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))

    def forward(self, x, layout: Layout, cache=None):
        x = self.residual(x, self.attn_norm, lambda h: self.attn(h, layout, cache))
        return self.residual(x, self.ffn_norm, lambda h: self.ffn(h, layout.routes))


class Setting:
    """A runtime route setting of a model (routes.py): read and assigned as an attribute, checked on
    assignment, never saved with the model."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        return self if model is None else model.settings[self.name]

    def __set__(self, model, value):
        model.settings[self.name] = check_setting(self.name, value)


class Transformer(nn.Module):
    """Embeddings + layers (+ final norm for pre-LN). Task models in heads.py extend this class, so the
    parameter names stay `embed.*`, `layers.{i}.*`, `final_norm` for every model."""

    layer_class: type[nn.Module] = Layer  # the translation decoder swaps in its cross-attention layer
    packs_padding = True  # the decoder's cross-attention needs the B T grid: it keeps the padded route
    attention, qkv, linear = Setting(), Setting(), Setting()

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config)
        self.layers = nn.ModuleList(self.layer_class(config, i) for i in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.dim, eps=config.norm_eps) if config.pre_norm else None
        self.causal = config.causal
        self.gradient_checkpointing = False
        self.settings = {"attention": "auto", "qkv": "auto", "linear": "auto"}
        self._warned_langs = False

    def plan(self, input_ids, attention_mask=None, cache: KVCache | None = None) -> Layout:
        """The padding layout of a call and its routes (routes.choose over this call's facts). An
        attention_mask given on the CPU for inputs on a GPU is the host copy the layout is read from, so
        the forward needs no host synchronisation (the trainer passes it so)."""
        past = cache.length if cache is not None else 0
        keep, host = self._key_mask(input_ids, attention_mask, past)
        # The real lengths: read on the host copy when there is one, else on the device (one sync); never
        # inside a compiled graph, whose shapes must not depend on them.
        lengths = None if _tracing() else (host if host is not None else keep).sum(1).tolist()
        facts = self._facts(input_ids, lengths, keep.shape[1], cache)
        settings = self.settings if self.packs_padding else {**self.settings, "attention": "padded"}
        routes = choose(settings, facts)
        if routes.attention != "padded":
            return Layout(keep, routes, host, past, packing=Packing(keep, causal=self.causal, host=host))
        allowed = self._allowed(keep, input_ids.shape[1], past, all_real=not facts.padding)
        return Layout(keep, routes, host, past, allowed=allowed, zero_rows=self.config.zero_pad_rows)

    def _facts(self, input_ids, lengths: list[int] | None, attended: int, cache) -> Facts:
        """This call's facts (routes.Facts); lengths None (compiling): padding assumed, every token a row."""
        device = input_ids.device.type
        autocast = autocast_dtype(device)
        past = cache.length if cache is not None else 0
        if lengths is None:
            padding, empty_row, rows = True, False, input_ids.numel()
        else:
            padding, empty_row = min(lengths, default=attended) < attended, min(lengths, default=1) == 0
            rows = sum(lengths) - past * len(lengths)
        return Facts(
            device=device, dtype=autocast or self.embed.positions.weight.dtype,
            dropout=self.training and self.config.attention_dropout > 0, causal=self.causal,
            compiling=_tracing(), autocast=autocast is not None, cache=cache is not None,
            grad=torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()),
            padding=padding, empty_row=empty_row, rows=rows,
            quantized=getattr(self, "precision", None) in ("int8", "fp32-onednn"))

    def encode(self, input_ids, attention_mask=None, langs=None, positions=None, token_type_ids=None,
               output_hidden_states=False, cache: KVCache | None = None, *, layout: Layout | None = None,
               checked: bool = False):
        """Run the encoder; returns (last hidden state B T D, hidden states or None). layout: this call's
        plan (built here when not given); checked: the caller ran check_inputs on these values (the training
        step does, on its CPU batch), so the forward reads no device value back to check them."""
        layout = layout if layout is not None else self.plan(input_ids, attention_mask, cache)
        if positions is None:
            positions = self._default_positions(input_ids, layout.past)
        langs = self._checked_inputs(input_ids, langs, positions, token_type_ids, not checked and not _tracing())
        packing = layout.packing
        if packing is not None:  # N real tokens from the embedding on
            input_ids, positions, langs, token_type_ids = (
                None if t is None else packing.pack(t) for t in (input_ids, positions, langs, token_type_ids))
        x = self.embed(input_ids, positions, langs, token_type_ids)
        row_mask = layout.row_mask(x.dtype)
        if row_mask is not None:
            x = x * row_mask
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, layout, cache, use_reentrant=False)
            else:
                x = layer(x, layout, cache)
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

    def _key_mask(self, input_ids, attention_mask, past):
        """(keep B S on the model's device, the same on the CPU when the caller gave it there, else None)."""
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

    def _allowed(self, keep, n_new, past, all_real: bool):
        """Where the padded route may attend, B 1 T S (True = allowed); None when nothing is masked, which
        lets SDPA pick its fastest kernel."""
        allowed = keep[:, None, None, :]
        if self.causal:
            q = torch.arange(past, past + n_new, device=keep.device)[:, None]
            k = torch.arange(keep.shape[1], device=keep.device)[None, :]
            return allowed & (k <= q)
        return None if all_real and not _tracing() else allowed

    def check_inputs(self, input_ids, langs=None, positions=None, token_type_ids=None) -> None:
        """The range checks of a forward, on tensors of any device (the training step runs them on its CPU
        batch, then calls the forward with checked=True, which needs no host synchronisation)."""
        if positions is None:
            positions = self._default_positions(input_ids, 0)
        self._checked_inputs(input_ids, langs, positions, token_type_ids, validate=True)

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


def _tracing() -> bool:
    """Inside torch.compile, torch.export or TorchScript: shapes must not depend on the data."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


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
