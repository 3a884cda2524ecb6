"""Vocabulary trimming (xlmlib.trim_vocab): the trimmed model and tokenizer give the full model's ids (after the
remap) and outputs on text whose pieces were kept; dropped pieces become <unk>; the result converts to HF.

The full models are transformers' own classes with random weights (tests/parity/hf_models.build) over the real
vocabularies of ../shared/assets: XLM-R's SentencePiece model (250,002 ids) and XLM's en-fr BPE (64,139 ids).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import xlmlib
from xlmlib import cli
from xlmlib.tokenize import XLMTokenizer

from ..parity.hf_models import build, roberta_config, xlm_config

transformers = pytest.importorskip("transformers")

GERMAN = ["Ich habe heute keine Zeit.", "Das Wetter ist schön.", "Wo ist der Bahnhof?", "Er liest ein Buch."]


def _old_ids(tok_full, tok_trim):
    """The full vocabulary's id of every trimmed id, through the pieces (independent of trim's bookkeeping)."""
    return torch.tensor([tok_full.token_to_id(tok_trim.id_to_token(i)) for i in range(tok_trim.vocab_size)])


@pytest.fixture(scope="module")
def xlmr_full(assets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("xlmr-full")
    cfg = roberta_config(vocab_size=250002, max_position_embeddings=64, hidden_size=16, intermediate_size=32)
    hf = build("XLMRobertaForMaskedLM", cfg, folder)
    shutil.copy(assets / "xlmr-spm-rebuilt" / "sentencepiece.bpe.model", folder)
    corpus = folder / "de.txt"
    corpus.write_text("\n".join(GERMAN) + "\n", encoding="utf-8")
    return folder, hf, corpus


def test_xlmr_trim_same_ids_and_outputs_and_hf_export(xlmr_full, tmp_path):
    folder, hf, corpus = xlmr_full
    report = xlmlib.trim_vocab(folder, tmp_path / "trim", corpus=[corpus])
    model, tok = xlmlib.load(tmp_path / "trim")
    full_tok = xlmlib.Tokenizer.from_pretrained(folder)
    old_of = _old_ids(full_tok, tok)
    assert tok.vocab_size == report.vocab_after == model.config.vocab_size < 100
    assert model.config.mask_index == tok.mask_id == tok.vocab_size - 1
    full, small = full_tok(GERMAN), tok(GERMAN)
    assert torch.equal(old_of[small["input_ids"]], full["input_ids"])  # identical ids after the remap
    real = small["attention_mask"].bool()  # outputs at pads carry no meaning (and differ by design, README)
    with torch.no_grad():
        reference = hf(**full).logits[..., old_of][real]
        ours = model(**small).logits[real]
    assert (reference - ours).abs().max() <= 1e-6
    # A piece the corpus never used is <unk> now.
    assert tok.encode("Quantenchromodynamik", add_special_tokens=False) == [tok.unk_id] * len(
        tok.encode("Quantenchromodynamik", add_special_tokens=False))
    xlmlib.convert(tmp_path / "trim", tmp_path / "trim-hf", to="hf")
    exported = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "trim-hf").eval()
    with torch.no_grad():
        assert (exported(**small).logits[real] - ours).abs().max() <= 1e-5
    assert (tmp_path / "trim-hf" / "kept_pieces.json").is_file()  # the id map travels with the tokenizer


def test_xlmr_max_pieces_keep_and_report(xlmr_full, tmp_path):
    folder, _, corpus = xlmr_full
    report = xlmlib.trim_vocab(folder, tmp_path / "capped", corpus=[corpus], max_pieces=5, keep=["▁Zürich"])
    tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "capped")
    assert tok.vocab_size == 4 + 5 + 1 + 1  # specials, 5 pieces, the kept extra, <mask>
    assert tok.token_to_id("▁Zürich") != tok.unk_id
    assert 0 < report.unk_rate < 1 and report.params_after < report.params_before
    record = json.loads((tmp_path / "capped" / "trim.json").read_text())
    assert record["vocab_before"] == 250002 and record["max_pieces"] == 5


def test_trim_errors(xlmr_full, tmp_path):
    folder, _, corpus = xlmr_full
    with pytest.raises(FileNotFoundError, match="no-such.txt"):
        xlmlib.trim_vocab(folder, tmp_path / "a", corpus=[tmp_path / "no-such.txt"])
    with pytest.raises(ValueError, match="not a piece"):
        xlmlib.trim_vocab(folder, tmp_path / "b", corpus=[corpus], keep=["no-such-piece-xyz"])
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        xlmlib.trim_vocab(folder, tmp_path / "exists", corpus=[corpus])
    assert not list(tmp_path.glob(".*partial"))  # nothing half-written is left behind


def test_trim_tokenizer_alone(assets, tmp_path):
    corpus = tmp_path / "de.txt"
    corpus.write_text("\n".join(GERMAN) + "\n", encoding="utf-8")
    report = xlmlib.trim_vocab(assets / "xlmr-spm-rebuilt", tmp_path / "tok", corpus=[corpus])
    assert not (tmp_path / "tok" / "model.safetensors").exists() and report.params_before == 0
    tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "tok")
    assert tok.vocab_size == report.vocab_after and tok.decode(tok.encode(GERMAN[0]), skip_special_tokens=True) == GERMAN[0]


def test_xlm_bpe_trim(assets, tmp_path):
    bpe = assets / "xlm-bpe-fastbpe"
    full_tok = XLMTokenizer.from_released(bpe / "codes_enfr", bpe / "vocab_enfr")
    cfg = xlm_config(vocab_size=full_tok.vocab_size, n_langs=2, lang2id={"en": 0, "fr": 1},
                     id2lang={0: "en", 1: "fr"}, emb_dim=16, n_heads=2)
    hf = build("XLMWithLMHeadModel", cfg, tmp_path / "full")
    full_tok.save_pretrained(tmp_path / "full")
    english = ["The cat sat on the mat.", "Where is the station?", "I don't know."]
    corpus = tmp_path / "en.txt"
    corpus.write_text("\n".join(english) + "\n", encoding="utf-8")
    xlmlib.trim_vocab(tmp_path / "full", tmp_path / "trim", corpus=[corpus], lang="en")
    model, tok = xlmlib.load(tmp_path / "trim")
    assert len(tok.bpe.merges) < len(full_tok.bpe.merges) and tok.vocab_size < 100
    old_of = _old_ids(full_tok, tok)
    full, small = full_tok(english, lang="en"), tok(english, lang="en")
    assert torch.equal(old_of[small["input_ids"]], full["input_ids"])
    with torch.no_grad():
        reference = hf(input_ids=full["input_ids"], attention_mask=full["attention_mask"], langs=full["langs"]).logits
        ours = model(**small).logits
    real = small["attention_mask"].bool()
    assert (reference[..., old_of][real] - ours[real]).abs().max() <= 1e-6
    assert set(tok.encode("zebra", lang="en", add_special_tokens=False)) == {tok.unk_id}


def test_cli_trim_and_info(xlmr_full, tmp_path, capsys):
    folder, _, corpus = xlmr_full
    assert cli.main(["trim-vocab", str(folder), str(tmp_path / "t"), "--corpus", str(corpus)]) == 0
    assert "250,002 ->" in capsys.readouterr().out
    assert cli.main(["info", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "trimmed from 250,002" in out and "file size:" in out
