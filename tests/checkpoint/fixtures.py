"""Writers of fairseq-style and original-XLM-style checkpoints for tests.

The weights come from a transformers model built with its own class (tests/parity/hf_models.py); its
tensors are written under the published foreign key names by the literal rename lists below, never by
xlmlib's tables. Sources of the names:
- fairseq: shared/reference/formats.md section 4; fairseq models/roberta/model.py (RobertaEncoder:
  `sentence_encoder`, `lm_head.{dense,layer_norm,weight,bias}`, `classification_heads.<name>.{dense,
  out_proj}`), modules/transformer_sentence_encoder_layer.py (`self_attn.{q,k,v,out}_proj`,
  `self_attn_layer_norm`, `fc1`, `fc2`, `final_layer_norm`), modules/multihead_attention.py (old fused
  `in_proj_weight/bias`), fairseq 0.9 (`decoder.` prefix, `emb_layer_norm`), transformer_encoder.py
  (`layer_norm` after the stack, the `version` buffer).
- original XLM: formats.md section 5; XLM xlm/model/transformer.py (`embeddings`, `position_embeddings`,
  `lang_embeddings`, `layer_norm_emb`, `attentions.i.{q,k,v,out}_lin`, `layer_norm1.i`, `ffns.i.lin1/2`,
  `layer_norm2.i`, `pred_layer.proj`), xlm/trainer.py save_checkpoint (top-level entries, `params`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

# (HF XLM-R name, fairseq name); {i} is the layer, {S} the `<top>.sentence_encoder.` prefix, {T} the top.
FAIRSEQ_FROM_HF_POST_LN = [
    ("roberta.embeddings.word_embeddings.weight", "{S}embed_tokens.weight"),
    ("roberta.embeddings.position_embeddings.weight", "{S}embed_positions.weight"),
    ("roberta.embeddings.LayerNorm.weight", "{S}{EMB_NORM}.weight"),
    ("roberta.embeddings.LayerNorm.bias", "{S}{EMB_NORM}.bias"),
    ("roberta.encoder.layer.{i}.attention.output.LayerNorm.weight", "{S}layers.{i}.self_attn_layer_norm.weight"),
    ("roberta.encoder.layer.{i}.attention.output.LayerNorm.bias", "{S}layers.{i}.self_attn_layer_norm.bias"),
    ("roberta.encoder.layer.{i}.output.LayerNorm.weight", "{S}layers.{i}.final_layer_norm.weight"),
    ("roberta.encoder.layer.{i}.output.LayerNorm.bias", "{S}layers.{i}.final_layer_norm.bias"),
]
FAIRSEQ_FROM_HF_PRE_LN = [
    ("roberta.embeddings.word_embeddings.weight", "{S}embed_tokens.weight"),
    ("roberta.embeddings.position_embeddings.weight", "{S}embed_positions.weight"),
    ("roberta.encoder.layer.{i}.attention.self_attn_layer_norm.weight", "{S}layers.{i}.self_attn_layer_norm.weight"),
    ("roberta.encoder.layer.{i}.attention.self_attn_layer_norm.bias", "{S}layers.{i}.self_attn_layer_norm.bias"),
    ("roberta.encoder.layer.{i}.LayerNorm.weight", "{S}layers.{i}.final_layer_norm.weight"),
    ("roberta.encoder.layer.{i}.LayerNorm.bias", "{S}layers.{i}.final_layer_norm.bias"),
    ("roberta.encoder.LayerNorm.weight", "{S}layer_norm.weight"),
    ("roberta.encoder.LayerNorm.bias", "{S}layer_norm.bias"),
]
FAIRSEQ_FROM_HF_LAYER = [
    ("roberta.encoder.layer.{i}.attention.self.query.weight", "{S}layers.{i}.self_attn.q_proj.weight"),
    ("roberta.encoder.layer.{i}.attention.self.query.bias", "{S}layers.{i}.self_attn.q_proj.bias"),
    ("roberta.encoder.layer.{i}.attention.self.key.weight", "{S}layers.{i}.self_attn.k_proj.weight"),
    ("roberta.encoder.layer.{i}.attention.self.key.bias", "{S}layers.{i}.self_attn.k_proj.bias"),
    ("roberta.encoder.layer.{i}.attention.self.value.weight", "{S}layers.{i}.self_attn.v_proj.weight"),
    ("roberta.encoder.layer.{i}.attention.self.value.bias", "{S}layers.{i}.self_attn.v_proj.bias"),
    ("roberta.encoder.layer.{i}.attention.output.dense.weight", "{S}layers.{i}.self_attn.out_proj.weight"),
    ("roberta.encoder.layer.{i}.attention.output.dense.bias", "{S}layers.{i}.self_attn.out_proj.bias"),
    ("roberta.encoder.layer.{i}.intermediate.dense.weight", "{S}layers.{i}.fc1.weight"),
    ("roberta.encoder.layer.{i}.intermediate.dense.bias", "{S}layers.{i}.fc1.bias"),
    ("roberta.encoder.layer.{i}.output.dense.weight", "{S}layers.{i}.fc2.weight"),
    ("roberta.encoder.layer.{i}.output.dense.bias", "{S}layers.{i}.fc2.bias"),
]
FAIRSEQ_FROM_HF_LM = [
    ("lm_head.dense.weight", "{T}lm_head.dense.weight"),
    ("lm_head.dense.bias", "{T}lm_head.dense.bias"),
    ("lm_head.layer_norm.weight", "{T}lm_head.layer_norm.weight"),
    ("lm_head.layer_norm.bias", "{T}lm_head.layer_norm.bias"),
    ("lm_head.bias", "{T}lm_head.bias"),
    ("roberta.embeddings.word_embeddings.weight", "{T}lm_head.weight"),  # fairseq stores the tied copy
]
FAIRSEQ_FROM_HF_CLS = [
    ("classifier.dense.weight", "classification_heads.{HEAD}.dense.weight"),
    ("classifier.dense.bias", "classification_heads.{HEAD}.dense.bias"),
    ("classifier.out_proj.weight", "classification_heads.{HEAD}.out_proj.weight"),
    ("classifier.out_proj.bias", "classification_heads.{HEAD}.out_proj.bias"),
]

# (HF XLM name, original XLM name)
XLM_FROM_HF = [
    ("transformer.embeddings.weight", "embeddings.weight"),
    ("transformer.position_embeddings.weight", "position_embeddings.weight"),
    ("transformer.lang_embeddings.weight", "lang_embeddings.weight"),
    ("transformer.layer_norm_emb.weight", "layer_norm_emb.weight"),
    ("transformer.layer_norm_emb.bias", "layer_norm_emb.bias"),
    *[(f"transformer.attentions.{{i}}.{n}.{w}", f"attentions.{{i}}.{n}.{w}")
      for n in ("q_lin", "k_lin", "v_lin", "out_lin") for w in ("weight", "bias")],
    *[(f"transformer.{n}.{{i}}.{w}", f"{n}.{{i}}.{w}") for n in ("layer_norm1", "layer_norm2") for w in ("weight", "bias")],
    *[(f"transformer.ffns.{{i}}.{n}.{w}", f"ffns.{{i}}.{n}.{w}") for n in ("lin1", "lin2") for w in ("weight", "bias")],
    ("transformer.embeddings.weight", "pred_layer.proj.weight"),  # share_inout_emb: stored twice
    ("pred_layer.proj.bias", "pred_layer.proj.bias"),
]


def rename(hf_state: dict, pairs, n_layers: int, **fields) -> dict:
    out = {}
    for hf_name, ext in pairs:
        for i in range(n_layers) if "{i}" in hf_name else [None]:
            src = hf_name.replace("{i}", str(i))
            if src in hf_state:
                out[ext.format(i=i, **fields)] = hf_state[src].clone()
    return out


def fairseq_state(hf_model, *, old=False, xl=False, lm=True, head=None, fused=False) -> dict:
    n = hf_model.config.num_hidden_layers
    top = "decoder." if old else "encoder."
    fields = {"S": top + "sentence_encoder.", "T": top, "EMB_NORM": "emb_layer_norm" if old else "layernorm_embedding",
              "HEAD": head}
    hf_state = hf_model.state_dict()
    pairs = (FAIRSEQ_FROM_HF_PRE_LN if xl else FAIRSEQ_FROM_HF_POST_LN) + FAIRSEQ_FROM_HF_LAYER
    pairs += (FAIRSEQ_FROM_HF_LM if lm else []) + (FAIRSEQ_FROM_HF_CLS if head else [])
    state = rename(hf_state, pairs, n, **fields)
    if fused:  # fairseq MultiheadAttention before 2019: q, k, v stacked by rows
        for i in range(n):
            p = f"{top}sentence_encoder.layers.{i}.self_attn."
            for w in ("weight", "bias"):
                state[f"{p}in_proj_{w}"] = torch.cat([state.pop(f"{p}{x}_proj.{w}") for x in "qkv"])
    state[f"{top}sentence_encoder.version"] = torch.tensor([2.0])  # transformer_encoder.py upgrade marker
    return state


def fairseq_args(hf_config, xl=False) -> dict:
    return {"arch": "roberta_xl" if xl else "roberta_base", "encoder_layers": hf_config.num_hidden_layers,
            "encoder_embed_dim": hf_config.hidden_size, "encoder_ffn_embed_dim": hf_config.intermediate_size,
            "encoder_attention_heads": hf_config.num_attention_heads, "activation_fn": "gelu",
            "encoder_normalize_before": xl, "dropout": 0.1, "attention_dropout": 0.1, "pooler_dropout": 0.0,
            "max_positions": hf_config.max_position_embeddings - 2}


def write_fairseq(folder: Path, state: dict, *, args=None, cfg=None, n_dict_lines=None, spm=True) -> Path:
    """model.pt + dict.txt (`<token> <count>` lines, fairseq data/dictionary.py) + a placeholder spm file."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"args": args, "model": state, "optimizer_history": [{"num_updates": 1}], "extra_state": {"epoch": 1}}
    if cfg is not None:
        payload["cfg"] = cfg
    torch.save(payload, folder / "model.pt")
    rows = next(v for k, v in state.items() if k.endswith("embed_tokens.weight")).shape[0]
    n_lines = rows - 5 if n_dict_lines is None else n_dict_lines  # 4 specials + lines + <mask>
    (folder / "dict.txt").write_text("".join(f"piece{j} {1000 - j}\n" for j in range(n_lines)), encoding="utf-8")
    if spm:
        (folder / "sentencepiece.bpe.model").write_bytes(b"placeholder: the loader only copies this file")
    return folder / "model.pt"


def xlm_params(hf_config, *, causal=False) -> dict:
    """A plain dict as XLM's train.py leaves it (formats.md 5), with its numpy array and FloatTensor fields."""
    lang2id = dict(hf_config.lang2id)
    return {
        "emb_dim": hf_config.emb_dim, "n_layers": hf_config.n_layers, "n_heads": hf_config.n_heads,
        "dropout": 0.1, "attention_dropout": 0.1, "gelu_activation": True, "share_inout_emb": True,
        "sinusoidal_embeddings": False, "use_lang_emb": True, "asm": False, "use_memory": False,
        "lgs": "-".join(sorted(lang2id)), "langs": sorted(lang2id), "lang2id": lang2id,
        "id2lang": {v: k for k, v in lang2id.items()}, "n_langs": len(lang2id), "n_words": hf_config.vocab_size,
        "bos_index": 0, "eos_index": 1, "pad_index": 2, "unk_index": 3, "mask_index": 5,
        "clm_steps": [("en", None)] if causal else [], "mlm_steps": [] if causal else [("en", None)],
        "mask_scores": np.maximum(np.arange(hf_config.vocab_size, dtype=np.float64), 1) ** -0.5,
        "pred_probs": torch.FloatTensor([0.8, 0.1, 0.1]), "command": "python train.py --exp_name test",
    }


def write_xlm(folder: Path, hf_model, *, causal=False, mt=False, ddp=False, codes=True, name="model.pth") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_model.config
    state = rename(hf_model.state_dict(), XLM_FROM_HF, cfg.n_layers)
    if ddp:
        state = {f"module.{k}": v for k, v in state.items()}
    words = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{j}>" for j in range(10)]
    words += [f"w{j}" for j in range(cfg.vocab_size - len(words))]
    payload = {"epoch": 3, "n_total_iter": 10, "best_metrics": {"valid_en_mlm_ppl": 12.5},
               "dico_id2word": dict(enumerate(words)), "dico_word2id": {w: j for j, w in enumerate(words)},
               "dico_counts": {w: 10 for w in words}, "params": xlm_params(cfg, causal=causal)}
    if mt:  # translation: encoder + decoder (decoder extras named as in xlm/model/transformer.py)
        payload["encoder"] = state
        payload["decoder"] = {**state, "encoder_attn.0.q_lin.weight": torch.zeros(cfg.emb_dim, cfg.emb_dim)}
    else:
        payload["model"] = state
    torch.save(payload, folder / name)
    if codes:
        (folder / "codes_test").write_text("w 0 10\n", encoding="utf-8")
        (folder / "vocab_test").write_text("".join(f"{w} 10\n" for w in words[14:]), encoding="utf-8")
    return folder / name


def namespace(d: dict) -> argparse.Namespace:
    return argparse.Namespace(**d)
