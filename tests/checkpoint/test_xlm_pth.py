"""Original XLM .pth through the production loader, against transformers' XLM holding the same random
weights (fixtures.py writes them under XLM's names). Reference: transformers 5.x eval-mode outputs on the
same padded batch, langs given; tolerance 1e-5 (fp32)."""

from __future__ import annotations

import pytest

import xlmlib
from xlmlib.checkpoint.load import read_checkpoint
from xlmlib.checkpoint.mapping import CheckpointError

from .fixtures import write_xlm
from .helpers import ATOL, build, max_diff, xlm_config


@pytest.mark.parametrize("ddp", [False, True])
def test_mlm_parity(tmp_path, ddp):
    hf = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    path = write_xlm(tmp_path / "xlm", hf, ddp=ddp)
    ours = xlmlib.MaskedLM.from_pretrained(path)
    cfg = ours.config
    assert (cfg.n_langs, cfg.langs, cfg.has_lang_emb, cfg.causal) == (3, ("de", "en", "fr"), True, False)
    assert max_diff(hf, ours, pad_id=2, langs=True) <= ATOL


def test_clm_is_causal_and_matches(tmp_path):
    hf = build("XLMWithLMHeadModel", xlm_config(causal=True), tmp_path / "hf")
    path = write_xlm(tmp_path / "xlm", hf, causal=True)
    ours = xlmlib.CausalLM.from_pretrained(path.parent)  # folder form
    assert ours.config.causal  # clm_steps only in params
    assert max_diff(hf, ours, pad_id=2, langs=True) <= ATOL


def test_params_vocab_and_codes(tmp_path):
    hf = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    ckpt = read_checkpoint(write_xlm(tmp_path / "xlm", hf))
    assert ckpt.format == "xlm-pth"
    assert len(ckpt.vocab) == 50 and ckpt.vocab[:3] == ("<s>", "</s>", "<pad>") and ckpt.vocab[14] == "w0"
    assert set(ckpt.tokenizer_files) == {"codes_test", "vocab_test"}


def test_mt_encoder_loads_decoder_is_refused(tmp_path):
    hf_lm = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    path = write_xlm(tmp_path / "xlm", hf_lm, mt=True, ddp=True)
    hf = hf_lm.transformer  # transformers' XLMModel inside the LM: the encoder we wrote
    assert max_diff(hf, xlmlib.Encoder.from_pretrained(path), pad_id=2, langs=True) <= ATOL
    with pytest.raises(CheckpointError, match="decoder.*Translator.from_pretrained"):
        read_checkpoint(path, part="decoder")


def test_weights_info_and_convert_need_no_codes_file(tmp_path, capsys):
    """The BPE codes belong to the tokenizer: without them the weights still load, `info` and `convert`
    work, and only asking for a tokenizer reports the missing codes."""
    from xlmlib.cli import main

    hf = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    path = write_xlm(tmp_path / "xlm", hf, codes=False)
    assert read_checkpoint(path).tokenizer_files == {}
    assert max_diff(hf, xlmlib.MaskedLM.from_pretrained(path), pad_id=2, langs=True) <= ATOL
    assert main(["info", str(path)]) == 0 and "xlm-pth" in capsys.readouterr().out
    assert main(["convert", str(path), str(tmp_path / "converted")]) == 0
    assert (tmp_path / "converted" / "model.safetensors").is_file()
    with pytest.raises(FileNotFoundError, match="codes_"):
        xlmlib.Tokenizer.from_pretrained(path.parent)
    model, tok = xlmlib.load(path)
    assert tok is None and isinstance(model, xlmlib.MaskedLM)


def test_dico_size_mismatch(tmp_path):
    import torch

    hf = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    path = write_xlm(tmp_path / "xlm", hf)
    payload = torch.load(path, weights_only=False)  # our own fixture, written just above
    payload["dico_id2word"] = {i: f"x{i}" for i in range(40)}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="40 words.*50 rows"):
        read_checkpoint(path)
