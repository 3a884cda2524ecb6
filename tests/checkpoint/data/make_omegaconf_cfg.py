"""Writes omegaconf_cfg.pt: a real OmegaConf DictConfig, pickled by torch.save as fairseq saves `cfg`.

Produced once with omegaconf 2.4.0 and torch 2.13 (omegaconf installed into a scratch folder, never a
dependency): PYTHONPATH=/tmp/oc python tests/checkpoint/data/make_omegaconf_cfg.py
The field names follow fairseq's RobertaConfig (fairseq/models/roberta/model.py); the values are those
of the tiny test models (tests/parity/hf_models.py), so test_fairseq can check them after loading.
"""

from pathlib import Path

import torch
from omegaconf import OmegaConf

CFG = {
    "_name": None,
    "common": {"fp16": True, "seed": 1},
    "model": {"_name": "roberta_xl", "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 128,
              "encoder_attention_heads": 4, "activation_fn": "gelu", "encoder_normalize_before": True,
              "layernorm_embedding": False, "dropout": 0.1, "attention_dropout": 0.1, "max_positions": 38,
              "pooler_activation_fn": "tanh", "untie_weights_roberta": False},
    "task": {"_name": "masked_lm", "tokens_per_sample": 38, "sample_break_mode": "complete"},
    "optimization": {"lr": [0.0001], "max_update": 100},
}

if __name__ == "__main__":
    torch.save({"cfg": OmegaConf.create(CFG), "args": None}, Path(__file__).with_name("omegaconf_cfg.pt"))
