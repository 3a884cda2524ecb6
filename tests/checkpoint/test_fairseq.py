"""fairseq XLM-R model.pt through the production loader, against the transformers model holding the same
random weights (tests/checkpoint/fixtures.py writes them under fairseq's names). Reference: transformers
5.x eval-mode outputs on the same padded batch; tolerance 1e-5 (fp32)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import xlmlib
from xlmlib.checkpoint.load import read_checkpoint
from xlmlib.checkpoint.mapping import CheckpointError
from xlmlib.checkpoint.safe_load import load_pickle
from xlmlib.checkpoint.stand_ins import plain

from .fake_omegaconf import fake_omegaconf
from .fixtures import fairseq_args, fairseq_state, namespace, write_fairseq
from .helpers import ATOL, build, max_diff, roberta_config

DATA = Path(__file__).with_name("data")


def _hf(tmp_path, cls=None, xl=False):
    cls = cls or ("XLMRobertaXLForMaskedLM" if xl else "XLMRobertaForMaskedLM")
    model = build(cls, roberta_config(xl=xl), tmp_path / "hf")
    with torch.no_grad():  # fairseq has no token types; the converted HF row is zero (formats.md 4)
        model.roberta.embeddings.token_type_embeddings.weight.zero_()
    return model


@pytest.mark.parametrize("old,fused,xl", [(False, False, False), (True, False, False), (True, True, False),
                                          (False, False, True), (False, True, True)])
def test_masked_lm_parity(tmp_path, old, fused, xl):
    hf = _hf(tmp_path, xl=xl)
    state = fairseq_state(hf, old=old, xl=xl, fused=fused)
    path = write_fairseq(tmp_path / "fs", state, args=namespace(fairseq_args(hf.config, xl)))
    ours = xlmlib.MaskedLM.from_pretrained(path)
    assert ours.config.pre_norm is xl and ours.config.embed_norm is not xl
    assert ours.config.position_offset == 2 and ours.config.norm_eps == 1e-5
    assert max_diff(hf, ours, pad_id=1) <= ATOL


@pytest.mark.parametrize("xl", [False, True])
def test_classification_head_parity(tmp_path, xl):
    hf = _hf(tmp_path, "XLMRobertaXLForSequenceClassification" if xl else "XLMRobertaForSequenceClassification", xl)
    state = fairseq_state(hf, xl=xl, lm=False, head="mnli")
    path = write_fairseq(tmp_path / "fs", state, args=namespace(fairseq_args(hf.config, xl)))
    ours = xlmlib.SequenceClassifier.from_pretrained(path.parent)  # the folder form
    assert ours.config.num_labels == 3  # from classification_heads.mnli.out_proj rows
    assert max_diff(hf, ours, pad_id=1) <= ATOL


def test_cfg_dict_and_dictconfig(tmp_path):
    hf = _hf(tmp_path, xl=True)
    state = fairseq_state(hf, xl=True)
    cfg = {"model": fairseq_args(hf.config, True), "task": {"_name": "masked_lm"}}
    write_fairseq(tmp_path / "plain", state, cfg=cfg)
    with fake_omegaconf() as to_dictconfig:
        write_fairseq(tmp_path / "omega", state, cfg=to_dictconfig(cfg))
    for folder in ("plain", "omega"):
        ours = xlmlib.MaskedLM.from_pretrained(tmp_path / folder / "model.pt")
        assert ours.config.n_heads == 4
        assert max_diff(hf, ours, pad_id=1) <= ATOL


def test_real_omegaconf_pickle_reads_without_omegaconf():
    # data/omegaconf_cfg.pt was written by real omegaconf 2.4 (data/make_omegaconf_cfg.py).
    payload = load_pickle(DATA / "omegaconf_cfg.pt")
    cfg = plain(payload["cfg"])
    assert cfg["model"]["encoder_attention_heads"] == 4 and cfg["model"]["encoder_normalize_before"] is True
    assert cfg["optimization"]["lr"] == [0.0001] and cfg["task"]["_name"] == "masked_lm"


def test_tokenizer_files_recorded(tmp_path):
    hf = _hf(tmp_path)
    path = write_fairseq(tmp_path / "fs", fairseq_state(hf), args=namespace(fairseq_args(hf.config)))
    ckpt = read_checkpoint(path)
    assert ckpt.format == "fairseq"
    assert set(ckpt.tokenizer_files) == {"dict.txt", "sentencepiece.bpe.model"}
    assert ckpt.config.mask_index == hf.config.vocab_size - 1  # <mask> follows dict.txt's lines
    assert torch.equal(ckpt.state["embed.token_types.weight"], torch.zeros(1, hf.config.hidden_size))


def test_dict_mismatch_names_both_numbers(tmp_path):
    hf = _hf(tmp_path)
    path = write_fairseq(tmp_path / "fs", fairseq_state(hf), args=namespace(fairseq_args(hf.config)), n_dict_lines=30)
    with pytest.raises(CheckpointError, match=r"dict\.txt.*35 ids.*50 rows"):
        read_checkpoint(path)


@pytest.mark.parametrize("missing", ["dict.txt", "sentencepiece.bpe.model"])
def test_missing_companion_file(tmp_path, missing):
    hf = _hf(tmp_path)
    path = write_fairseq(tmp_path / "fs", fairseq_state(hf), args=namespace(fairseq_args(hf.config)))
    (path.parent / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        read_checkpoint(path)


def test_unmapped_key_is_listed(tmp_path):
    hf = _hf(tmp_path)
    state = fairseq_state(hf)
    state["encoder.sentence_encoder.mystery.weight"] = torch.zeros(2)
    path = write_fairseq(tmp_path / "fs", state, args=namespace(fairseq_args(hf.config)))
    with pytest.raises(CheckpointError, match="mystery"):
        read_checkpoint(path)
