"""config.json of HF transformers <-> ModelConfig (XLMConfig, XLMRobertaConfig, XLMRobertaXLConfig).

Defaults are those of the transformers config classes (formats.md sections 1 and 3): a field absent
from config.json means the class default, which for XLMRobertaConfig is BERT's, not XLM-R's.
"""

from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from .mapping import CheckpointError

# XLMConfig fields whose non-default values change the heads in ways we do not implement.
_XLM_SUMMARY_DEFAULTS = {"summary_type": "first", "summary_use_proj": True, "summary_activation": None,
                         "summary_proj_to_labels": True}


def _num_labels(d: dict[str, Any]) -> int:
    if "id2label" in d:
        return len(d["id2label"])
    return int(d.get("num_labels", 2))


def _xlm_from_hf(d: dict[str, Any], source: str) -> ModelConfig:
    if d.get("asm"):
        raise CheckpointError(f"{source}: adaptive-softmax (asm) XLM heads are not supported")
    if not d.get("is_encoder", True):
        raise CheckpointError(f"{source}: is_encoder=false (an XLM decoder) is not supported")
    for key, default in _XLM_SUMMARY_DEFAULTS.items():
        if d.get(key, default) != default:
            raise CheckpointError(f"{source}: {key}={d[key]!r} is not supported (only {default!r})")
    dim = d.get("emb_dim", 2048)
    n_langs = d.get("n_langs", 1)
    id2lang = {int(k): v for k, v in (d.get("id2lang") or {}).items()}  # JSON turns the ids into strings
    langs = tuple(id2lang[i] for i in range(n_langs)) if set(id2lang) == set(range(n_langs)) else ()
    return ModelConfig(
        vocab_size=d.get("vocab_size", d.get("n_words", 30145)), dim=dim, n_layers=d.get("n_layers", 12),
        n_heads=d.get("n_heads", 16), ffn_dim=4 * dim, max_positions=d.get("max_position_embeddings", 512),
        sinusoidal=d.get("sinusoidal_embeddings", False), n_langs=n_langs, use_lang_emb=d.get("use_lang_emb", True),
        langs=langs, activation="gelu" if d.get("gelu_activation", True) else "relu",
        norm_eps=d.get("layer_norm_eps", 1e-12), causal=d.get("causal", False), dropout=d.get("dropout", 0.1),
        attention_dropout=d.get("attention_dropout", 0.1), pad_index=d.get("pad_index", 2),
        bos_index=d.get("bos_index", 0), eos_index=d.get("eos_index", 1), unk_index=d.get("unk_index", 3),
        mask_index=d.get("mask_index", 5), head_style="xlm", num_labels=_num_labels(d),
        start_n_top=d.get("start_n_top", 5), end_n_top=d.get("end_n_top", 5), init_std=d.get("init_std", 0.02))


def _roberta_from_hf(d: dict[str, Any], pre_norm: bool, source: str) -> ModelConfig:
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{source}: position_embedding_type={d['position_embedding_type']!r} is not supported")
    act = d.get("hidden_act", "gelu")
    if act not in ("gelu", "relu"):
        raise CheckpointError(f"{source}: hidden_act={act!r} is not supported (gelu or relu)")
    pad = d.get("pad_token_id", 1)
    vocab = d.get("vocab_size", 250880 if pre_norm else 30522)
    return ModelConfig(
        vocab_size=vocab, dim=d.get("hidden_size", 2560 if pre_norm else 768),
        n_layers=d.get("num_hidden_layers", 36 if pre_norm else 12),
        n_heads=d.get("num_attention_heads", 32 if pre_norm else 12),
        ffn_dim=d.get("intermediate_size", 10240 if pre_norm else 3072),
        max_positions=d.get("max_position_embeddings", 514 if pre_norm else 512), position_offset=pad + 1,
        type_vocab_size=d.get("type_vocab_size", 1 if pre_norm else 2), n_langs=1, use_lang_emb=False,
        activation=act, norm_eps=d.get("layer_norm_eps", 1e-5 if pre_norm else 1e-12), pre_norm=pre_norm,
        embed_norm=not pre_norm, zero_pad_rows=False, causal=bool(d.get("is_decoder", False)),
        dropout=d.get("hidden_dropout_prob", 0.1), attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        pad_index=pad, bos_index=d.get("bos_token_id", 0), eos_index=d.get("eos_token_id", 2), unk_index=3,
        # <mask> is the last id of the 250002-entry vocabulary; XL/XXL pad the table beyond it (formats.md 3).
        mask_index=min(250001, vocab - 1), head_style="roberta", num_labels=_num_labels(d),
        classifier_dropout=d.get("classifier_dropout"), init_std=d.get("initializer_range", 0.02))


def is_pre_norm(d: dict[str, Any], keys) -> bool:
    """XL/XXL: the xxl hub config says model_type "xlm-roberta", so trust the architecture and the keys."""
    if d.get("model_type") == "xlm-roberta-xl":
        return True
    if any("XLMRobertaXL" in a for a in d.get("architectures") or ()):
        return True
    return any(k.endswith("self_attn_layer_norm.weight") for k in keys)


def config_from_hf(d: dict[str, Any], keys, source: str) -> ModelConfig:
    model_type = d.get("model_type")
    if model_type == "xlm":
        return _xlm_from_hf(d, source)
    if model_type in ("xlm-roberta", "xlm-roberta-xl"):
        return _roberta_from_hf(d, is_pre_norm(d, keys), source)
    raise CheckpointError(f"{source}: model_type {model_type!r} is not XLM or XLM-R (xlm, xlm-roberta, xlm-roberta-xl)")


def _labels(n: int) -> dict[str, Any]:
    return {"id2label": {str(i): f"LABEL_{i}" for i in range(n)}, "label2id": {f"LABEL_{i}": i for i in range(n)}}


def _xlm_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    out = {
        "model_type": "xlm", "vocab_size": cfg.vocab_size, "emb_dim": cfg.dim, "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads, "max_position_embeddings": cfg.max_positions,
        "sinusoidal_embeddings": cfg.sinusoidal, "n_langs": cfg.n_langs, "use_lang_emb": cfg.use_lang_emb,
        "gelu_activation": cfg.activation == "gelu", "layer_norm_eps": cfg.norm_eps, "causal": cfg.causal,
        "dropout": cfg.dropout, "attention_dropout": cfg.attention_dropout, "pad_index": cfg.pad_index,
        "bos_index": cfg.bos_index, "eos_index": cfg.eos_index, "unk_index": cfg.unk_index,
        "mask_index": cfg.mask_index, "pad_token_id": cfg.pad_index, "bos_token_id": cfg.bos_index,
        "start_n_top": cfg.start_n_top, "end_n_top": cfg.end_n_top, "init_std": cfg.init_std, "asm": False,
    }
    if cfg.langs:
        out["lang2id"] = cfg.lang2id
        out["id2lang"] = {str(i): c for i, c in enumerate(cfg.langs)}
    return out


def _roberta_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "model_type": "xlm-roberta-xl" if cfg.pre_norm else "xlm-roberta", "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "intermediate_size": cfg.ffn_dim, "hidden_act": cfg.activation, "max_position_embeddings": cfg.max_positions,
        "type_vocab_size": cfg.type_vocab_size, "layer_norm_eps": cfg.norm_eps, "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout, "pad_token_id": cfg.pad_index,
        "bos_token_id": cfg.bos_index, "eos_token_id": cfg.eos_index, "is_decoder": cfg.causal,
        "classifier_dropout": cfg.classifier_dropout, "initializer_range": cfg.init_std,
        "position_embedding_type": "absolute",
    }


def config_to_hf(cfg: ModelConfig, architecture: str) -> dict[str, Any]:
    """config.json for transformers; fails, naming the fields, when transformers cannot express cfg."""
    out = _xlm_to_hf(cfg) if cfg.head_style == "xlm" else _roberta_to_hf(cfg)
    out.update(architectures=[architecture], **_labels(cfg.num_labels))
    back = config_from_hf(out, (), "config_to_hf")
    differ = [k for k, v in cfg.to_dict().items() if back.to_dict()[k] != v]
    if differ:
        raise CheckpointError(f"transformers' {architecture} cannot express this model's " + ", ".join(
            f"{k}={getattr(cfg, k)!r}" for k in differ))
    return out
