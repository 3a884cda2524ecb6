"""Tiny random transformers models for parity tests, and the inputs fed to both sides.

Every reference model is built by transformers' own classes with a fixed seed and saved with its own
save_pretrained; our side loads that folder through the production loader (from_pretrained).
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

VOCAB, DIM, LAYERS, HEADS = 50, 32, 2, 4
XLM_LANGS = {"de": 0, "en": 1, "fr": 2}


def xlm_config(**over):
    base = {"vocab_size": VOCAB, "emb_dim": DIM, "n_layers": LAYERS, "n_heads": HEADS, "max_position_embeddings": 64,
            "n_langs": 3, "use_lang_emb": True, "lang2id": XLM_LANGS, "id2lang": {v: k for k, v in XLM_LANGS.items()},
            "num_labels": 3, "start_n_top": 3, "end_n_top": 2}
    base.update(over)
    return transformers.XLMConfig(**base)


def roberta_config(xl=False, **over):
    base = {"vocab_size": VOCAB, "hidden_size": DIM, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": 4 * DIM, "max_position_embeddings": 40, "type_vocab_size": 1, "pad_token_id": 1,
            "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5, "num_labels": 3}
    base.update(over)
    cls = transformers.XLMRobertaXLConfig if xl else transformers.XLMRobertaConfig
    return cls(**base)


def build(hf_class_name: str, config, directory, seed=0):
    """A transformers model with random weights (all of them, LayerNorms and biases included), saved."""
    torch.manual_seed(seed)
    model = getattr(transformers, hf_class_name)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("position_embeddings.weight") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)  # make norms/positions non-trivial too
            elif name.endswith("bias"):
                param.normal_(0, 0.1)
    model.eval()
    model.save_pretrained(directory)
    return model


def batch(pad_id: int, padding: str = "right", B: int = 3, T: int = 9, seed: int = 1):
    """ids B T with a few padded rows (pad at the given side) and their attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for row, n_pad in zip(range(1, B), (3, 5)):
        if padding == "right":
            ids[row, T - n_pad:], mask[row, T - n_pad:] = pad_id, 0
        else:
            ids[row, :n_pad], mask[row, :n_pad] = pad_id, 0
    return ids, mask
