"""convert(): xlmlib <-> HF <-> (fairseq / XLM .pth -> xlmlib) round trips keep outputs equal (the
expected values are the source models' own outputs, compared on the same batch; fp32 tolerance 1e-5),
tokenizer files travel along, the CLI prints the difference, and an interrupted conversion leaves no
destination folder."""

from __future__ import annotations

import pytest
import torch

import xlmlib
from xlmlib.checkpoint import convert as convert_mod
from xlmlib.cli import main

from .fixtures import fairseq_args, fairseq_state, namespace, write_fairseq, write_xlm
from .helpers import ATOL, build, max_diff, roberta_config, xlm_config


def test_fairseq_to_xlmlib_to_hf_to_xlmlib(tmp_path):
    hf = build("XLMRobertaXLForMaskedLM", roberta_config(xl=True), tmp_path / "hf")
    with torch.no_grad():
        hf.roberta.embeddings.token_type_embeddings.weight.zero_()
    src = write_fairseq(tmp_path / "fs", fairseq_state(hf, xl=True), args=namespace(fairseq_args(hf.config, True)))
    assert xlmlib.convert(src, tmp_path / "a") <= ATOL
    assert {"dict.txt", "sentencepiece.bpe.model", "config.json", "model.safetensors"} <= {
        p.name for p in (tmp_path / "a").iterdir()}
    assert xlmlib.convert(tmp_path / "a", tmp_path / "b", to="hf") <= ATOL
    back = __import__("transformers").XLMRobertaXLForMaskedLM.from_pretrained(tmp_path / "b").eval()
    assert max_diff(hf, back, pad_id=1) <= ATOL  # transformers reads what we wrote
    assert xlmlib.convert(tmp_path / "b", tmp_path / "c") <= ATOL
    assert max_diff(hf, xlmlib.MaskedLM.from_pretrained(tmp_path / "c"), pad_id=1) <= ATOL


def test_xlm_pth_to_xlmlib_and_hf(tmp_path):
    hf = build("XLMWithLMHeadModel", xlm_config(), tmp_path / "hf")
    src = write_xlm(tmp_path / "xlm", hf)
    assert xlmlib.convert(src, tmp_path / "a") <= ATOL
    assert (tmp_path / "a" / "codes_test").is_file() and (tmp_path / "a" / "vocab_test").is_file()
    assert max_diff(hf, xlmlib.MaskedLM.from_pretrained(tmp_path / "a"), pad_id=2, langs=True) <= ATOL
    assert xlmlib.convert(tmp_path / "a", tmp_path / "b", to="hf") <= ATOL
    back = __import__("transformers").XLMWithLMHeadModel.from_pretrained(tmp_path / "b").eval()
    assert max_diff(hf, back, pad_id=2, langs=True) <= ATOL


def test_classifier_and_bfloat16(tmp_path):
    hf = build("XLMRobertaForSequenceClassification", roberta_config(), tmp_path / "hf")
    diff = xlmlib.convert(tmp_path / "hf", tmp_path / "bf", dtype="bfloat16")
    assert 0 < diff < 0.1  # bf16 keeps 8 bits of mantissa: small, non-zero rounding differences
    ours = xlmlib.SequenceClassifier.from_pretrained(tmp_path / "bf")
    assert ours.classifier.out_proj.weight.dtype == torch.float32  # loaded back in fp32 unless asked
    assert torch.equal(ours.classifier.out_proj.weight, hf.classifier.out_proj.weight.to(torch.bfloat16).float())


def test_bare_safetensors_source(tmp_path):
    hf = build("XLMRobertaModel", roberta_config(), tmp_path / "hf")
    assert xlmlib.convert(tmp_path / "hf" / "model.safetensors", tmp_path / "a") <= ATOL
    assert max_diff(hf, xlmlib.Encoder.from_pretrained(tmp_path / "a"), pad_id=1) <= ATOL


def test_interrupted_conversion_leaves_no_destination(tmp_path, monkeypatch):
    build("XLMRobertaForMaskedLM", roberta_config(), tmp_path / "hf")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the files were being checked

    monkeypatch.setattr(convert_mod, "_verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_mod.convert(tmp_path / "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # the temporary sibling is gone too


def test_existing_destination_is_refused(tmp_path):
    build("XLMRobertaModel", roberta_config(), tmp_path / "hf")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        xlmlib.convert(tmp_path / "hf", tmp_path / "out")


def test_cli_prints_difference(tmp_path, capsys):
    build("XLMRobertaForMaskedLM", roberta_config(), tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "x"), "--to", "hf"]) == 0
    out = capsys.readouterr().out
    assert "max |difference|" in out and (tmp_path / "x" / "config.json").is_file()
    assert main(["convert", str(tmp_path / "nowhere.pt"), str(tmp_path / "y")]) == 1
