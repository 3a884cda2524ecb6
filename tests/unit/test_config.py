"""Presets and ModelConfig: every preset builds at full size (on the meta device, no memory), parameter
counts equal transformers' for the same architecture, and bad configs fail by name."""

import pytest
import torch

import xlmlib
from xlmlib import ModelConfig

EXPECTED_PRESETS = {
    "xlm-mlm-en-2048", "xlm-mlm-ende-1024", "xlm-mlm-enfr-1024", "xlm-mlm-enro-1024", "xlm-mlm-xnli15-1024",
    "xlm-mlm-tlm-xnli15-1024", "xlm-clm-enfr-1024", "xlm-clm-ende-1024", "xlm-mlm-17-1280", "xlm-mlm-100-1280",
    "xlm-roberta-base", "xlm-roberta-large", "xlm-roberta-xl", "xlm-roberta-xxl",
    "xlmlib-mini",  # the shipped model's architecture (configs/models/xlmlib-mini.toml, on main since f9606ff)
}


def test_every_published_checkpoint_has_a_preset():
    assert set(xlmlib.list_presets()) == EXPECTED_PRESETS


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_builds_at_full_size_on_meta(name):
    cfg = ModelConfig.from_preset(name)
    with torch.device("meta"):
        model = xlmlib.MaskedLM(cfg)
    assert model.embed.tokens.weight.shape == (cfg.vocab_size, cfg.dim)
    assert len(model.layers) == cfg.n_layers
    assert (model.embed.langs is not None) == cfg.has_lang_emb
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_clm_presets_are_causal_and_language_tables_match_the_hub():
    assert ModelConfig.from_preset("xlm-clm-enfr-1024").causal
    assert not ModelConfig.from_preset("xlm-mlm-enfr-1024").causal
    # lang2id of the hub tokenizer_config.json files (formats.md section 1)
    assert ModelConfig.from_preset("xlm-mlm-ende-1024").lang2id == {"de": 0, "en": 1}
    assert ModelConfig.from_preset("xlm-mlm-xnli15-1024").lang2id["en"] == 4
    assert ModelConfig.from_preset("xlm-mlm-100-1280").lang2id["zh_yue"] == 99
    assert not ModelConfig.from_preset("xlm-mlm-17-1280").has_lang_emb


@pytest.mark.parametrize("name", ["xlm-roberta-base", "xlm-roberta-large"])
def test_parameter_count_equals_transformers(name):
    transformers = pytest.importorskip("transformers")
    cfg = ModelConfig.from_preset(name)
    hf_cfg = transformers.XLMRobertaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.dim, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, intermediate_size=cfg.ffn_dim, max_position_embeddings=cfg.max_positions,
        type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.norm_eps)
    with torch.device("meta"):
        ref = transformers.XLMRobertaForMaskedLM(hf_cfg)
        ours = xlmlib.MaskedLM(cfg)
    # tied weights count once on both sides (parameters() yields shared tensors once)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_bad_configs_fail_with_the_field_name():
    cfg = ModelConfig.from_preset("xlm-roberta-base")
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        cfg.replace(n_heads=7)
    with pytest.raises(TypeError, match="unknown ModelConfig option"):
        cfg.replace(hidden_size=3)
    with pytest.raises(ValueError, match="unknown ModelConfig key.*hidden_size"):
        ModelConfig.from_dict({**cfg.to_dict(), "hidden_size": 768})
    with pytest.raises(ValueError, match="unknown preset 'xlm-roberta-mega'"):
        ModelConfig.from_preset("xlm-roberta-mega")
    with pytest.raises(ValueError, match="langs lists 1 codes but n_langs is 2"):
        ModelConfig(vocab_size=10, dim=8, n_layers=1, n_heads=2, ffn_dim=16, n_langs=2, langs=("en",))
