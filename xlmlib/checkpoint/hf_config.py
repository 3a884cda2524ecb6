"""config.json of HF transformers <-> ModelConfig (XLMConfig, XLMRobertaConfig, XLMRobertaXLConfig).

Defaults are those of the transformers config classes (formats.md sections 1 and 3): a field absent
from config.json means the class default, which for XLMRobertaConfig is BERT's, not XLM-R's. One table
per family maps our fields to config.json keys, read in one direction and written in the other; what
the file does not decide (language embeddings of XLM-R, padded-row zeroing, ...) comes from the family's
preset.
"""

from __future__ import annotations

from typing import Any

from ..config import ACTIVATIONS, ModelConfig
from ..family import FAMILIES, XLM, XLM_R, XLM_R_XL, Family, family_of
from .mapping import CheckpointError

# XLMConfig fields whose non-default values change the heads in ways we do not implement.
_XLM_SUMMARY_DEFAULTS = {"summary_type": "first", "summary_use_proj": True, "summary_activation": None,
                         "summary_proj_to_labels": True}

# Our field -> (config.json key, transformers' default when the key is absent). XLMConfig's defaults are
# those of xlm-mlm-en-2048; XLMRobertaConfig's are BERT's, not XLM-R's; XLMRobertaXLConfig's are XL's.
XLM_KEYS = {
    "vocab_size": ("vocab_size", 30145), "dim": ("emb_dim", 2048), "n_layers": ("n_layers", 12),
    "n_heads": ("n_heads", 16), "max_positions": ("max_position_embeddings", 512),
    "sinusoidal": ("sinusoidal_embeddings", False), "n_langs": ("n_langs", 1), "use_lang_emb": ("use_lang_emb", True),
    "norm_eps": ("layer_norm_eps", 1e-12), "causal": ("causal", False), "dropout": ("dropout", 0.1),
    "attention_dropout": ("attention_dropout", 0.1), "pad_index": ("pad_index", 2), "bos_index": ("bos_index", 0),
    "eos_index": ("eos_index", 1), "unk_index": ("unk_index", 3), "mask_index": ("mask_index", 5),
    "start_n_top": ("start_n_top", 5), "end_n_top": ("end_n_top", 5), "init_std": ("init_std", 0.02),
}
ROBERTA_KEYS = {
    "vocab_size": ("vocab_size", 30522), "dim": ("hidden_size", 768), "n_layers": ("num_hidden_layers", 12),
    "n_heads": ("num_attention_heads", 12), "ffn_dim": ("intermediate_size", 3072),
    "max_positions": ("max_position_embeddings", 512), "type_vocab_size": ("type_vocab_size", 2),
    "activation": ("hidden_act", "gelu"), "norm_eps": ("layer_norm_eps", 1e-12), "causal": ("is_decoder", False),
    "dropout": ("hidden_dropout_prob", 0.1), "attention_dropout": ("attention_probs_dropout_prob", 0.1),
    "pad_index": ("pad_token_id", 1), "bos_index": ("bos_token_id", 0), "eos_index": ("eos_token_id", 2),
    "classifier_dropout": ("classifier_dropout", None), "init_std": ("initializer_range", 0.02),
}
ROBERTA_XL_DEFAULTS = {"vocab_size": 250880, "dim": 2560, "n_layers": 36, "n_heads": 32, "ffn_dim": 10240,
                       "max_positions": 514, "type_vocab_size": 1, "norm_eps": 1e-5}
KEYS = {"XLM": XLM_KEYS, "XLM-R": ROBERTA_KEYS, "XLM-R XL": ROBERTA_KEYS}


def _read(d: dict[str, Any], family: Family) -> dict[str, Any]:
    """Every field the file decides, with transformers' default where the key is absent."""
    xl = family is XLM_R_XL
    return {field: d.get(key, ROBERTA_XL_DEFAULTS.get(field, default) if xl else default)
            for field, (key, default) in KEYS[family.name].items()}


def _label_fields(d: dict[str, Any]) -> dict[str, Any]:
    """num_labels and the label names of id2label; transformers' placeholder names (LABEL_i) are no names."""
    if "id2label" not in d:
        return {"num_labels": int(d.get("num_labels", 2)), "labels": ()}
    id2label = {int(k): str(v) for k, v in d["id2label"].items()}
    names = tuple(id2label[i] for i in range(len(id2label))) if set(id2label) == set(range(len(id2label))) else ()
    if names == tuple(f"LABEL_{i}" for i in range(len(names))):
        names = ()
    return {"num_labels": len(id2label), "labels": names}


def lang_codes(id2lang, lang2id, n_langs: int) -> tuple[str, ...]:
    """The language codes in id order, from id2lang or lang2id (JSON and pickles may hold the ids as
    strings); () unless they name exactly the ids 0..n_langs-1."""
    id2lang = id2lang or {v: k for k, v in (lang2id or {}).items()}
    id2lang = {int(k): v for k, v in id2lang.items()}
    return tuple(id2lang[i] for i in range(n_langs)) if set(id2lang) == set(range(n_langs)) else ()


def check_activation(name: str, source: str, key: str) -> str:
    if name not in ACTIVATIONS:
        raise CheckpointError(f"{source}: {key}={name!r} is not supported ({' or '.join(ACTIVATIONS)})")
    return name


def _xlm_from_hf(d: dict[str, Any], source: str) -> ModelConfig:
    if d.get("asm"):
        raise CheckpointError(f"{source}: adaptive-softmax (asm) XLM heads are not supported")
    if not d.get("is_encoder", True):
        raise CheckpointError(f"{source}: is_encoder=false (an XLM decoder) is not supported")
    for key, default in _XLM_SUMMARY_DEFAULTS.items():
        if d.get(key, default) != default:
            raise CheckpointError(f"{source}: {key}={d[key]!r} is not supported (only {default!r})")
    fields = _read(d, XLM)
    fields["vocab_size"] = d.get("vocab_size", d.get("n_words", fields["vocab_size"]))
    return ModelConfig.from_preset(XLM.preset).replace(
        **fields, ffn_dim=4 * fields["dim"], langs=lang_codes(d.get("id2lang"), None, fields["n_langs"]),
        activation="gelu" if d.get("gelu_activation", True) else "relu", **_label_fields(d))


def _roberta_from_hf(d: dict[str, Any], family: Family, source: str) -> ModelConfig:
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{source}: position_embedding_type={d['position_embedding_type']!r} is not supported")
    fields = _read(d, family)
    check_activation(fields["activation"], source, "hidden_act")
    fields["causal"] = bool(fields["causal"])
    return ModelConfig.from_preset(family.preset).replace(
        **fields, position_offset=fields["pad_index"] + 1,
        # <mask> is the last id, len(pieces) + 1 as transformers computes it, also of trimmed and extended
        # vocabularies (Glot500: 401,145 ids); XL/XXL pad the table beyond the 250,002 ids (formats.md 3).
        mask_index=250001 if family is XLM_R_XL and fields["vocab_size"] > 250002 else fields["vocab_size"] - 1,
        **_label_fields(d))


def is_pre_norm(d: dict[str, Any], keys) -> bool:
    """XL/XXL: the xxl hub config says model_type "xlm-roberta", so trust the architecture and the keys."""
    if d.get("model_type") == XLM_R_XL.hf_model_type:
        return True
    if any(XLM_R_XL.hf_prefix in a for a in d.get("architectures") or ()):
        return True
    return any(k.endswith("self_attn_layer_norm.weight") for k in keys)


def config_from_hf(d: dict[str, Any], keys, source: str) -> ModelConfig:
    model_type = d.get("model_type")
    if model_type == XLM.hf_model_type:
        return _xlm_from_hf(d, source)
    if model_type in (XLM_R.hf_model_type, XLM_R_XL.hf_model_type):
        return _roberta_from_hf(d, XLM_R_XL if is_pre_norm(d, keys) else XLM_R, source)
    names = ", ".join(f.hf_model_type for f in FAMILIES)
    raise CheckpointError(f"{source}: model_type {model_type!r} is not XLM or XLM-R ({names})")


def _labels(cfg: ModelConfig) -> dict[str, Any]:
    """transformers' id2label / label2id (LABEL_i where the classes have no names)."""
    return {"id2label": {str(i): name for i, name in cfg.id2label.items()}, "label2id": cfg.label2id}


def _to_hf(cfg: ModelConfig, family: Family) -> dict[str, Any]:
    out = {"model_type": family.hf_model_type}
    out.update({key: getattr(cfg, field) for field, (key, _) in KEYS[family.name].items()})
    if family is XLM:
        out.update(gelu_activation=cfg.activation == "gelu", pad_token_id=cfg.pad_index, bos_token_id=cfg.bos_index,
                   asm=False)
        if cfg.langs:
            out["lang2id"] = cfg.lang2id
            out["id2lang"] = {str(i): c for i, c in enumerate(cfg.langs)}
    else:
        out["position_embedding_type"] = "absolute"
    return out


def config_to_hf(cfg: ModelConfig, architecture: str) -> dict[str, Any]:
    """config.json for transformers; fails, naming the fields, when transformers cannot express cfg."""
    out = _to_hf(cfg, family_of(cfg))
    out.update(architectures=[architecture], **_labels(cfg))
    back = config_from_hf(out, (), "config_to_hf")
    differ = [k for k, v in cfg.to_dict().items() if back.to_dict()[k] != v]
    if differ:
        raise CheckpointError(f"transformers' {architecture} cannot express this model's " + ", ".join(
            f"{k}={getattr(cfg, k)!r}" for k in differ))
    return out
