"""Vocabulary trimming (xlmlib.trim_vocab): the trimmed model and tokenizer give the full model's ids (after the
remap) and outputs on text whose pieces were kept; XLM-R text that used a dropped piece falls back to kept pieces
(a real SentencePiece model of the kept pieces), XLM's dropped pieces become <unk>; the result converts to HF and
transformers reads the trimmed tokenizer with the same ids; trimmed folders of the old form (kept_pieces.json)
still load; an fp16 model stays fp16.

The full models are transformers' own classes with random weights (tests/parity/hf_models.build) over the real
vocabularies of ../shared/assets: XLM-R's SentencePiece model (250,002 ids) and XLM's en-fr BPE (64,139 ids).
"""

from __future__ import annotations

import json
import shutil

import pytest
import sentencepiece as spm_lib
import torch
from safetensors.torch import load_file

import xlmlib
from xlmlib import cli
from xlmlib.tokenize import XLMTokenizer
from xlmlib.vocab.spm import read_model

from ..folders import save_tiny_xlmr
from ..parity.hf_models import build, roberta_config, xlm_config

transformers = pytest.importorskip("transformers")

GERMAN = ["Ich habe heute keine Zeit.", "Das Wetter ist schön.", "Wo ist der Bahnhof?", "Er liest ein Buch."]


def sentencepiece_model(folder):
    return read_model(folder / "sentencepiece.bpe.model")


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
    assert tok.decode(small["input_ids"][1], skip_special_tokens=True) == GERMAN[1]
    # A word whose pieces were dropped falls back to kept pieces before <unk>: the full vocabulary splits
    # "schönest" as ▁schöne + st (neither is in the corpus), the trimmed one as ▁schön + est (both are; found by
    # trying corpus words + "est"). Characters no kept piece spells are still <unk>.
    assert full_tok.tokenize("schönest") == ["▁schöne", "st"] and tok.tokenize("schönest") == ["▁schön", "est"]
    assert tok.tokenize("Quantenchromodynamik") == ["<unk>"]  # Q, u, ... are not kept: one <unk> (spm merges)
    assert not (tmp_path / "trim" / "kept_pieces.json").exists()
    xlmlib.convert(tmp_path / "trim", tmp_path / "trim-hf", to="hf")
    exported = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "trim-hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "trim-hf")
    texts = [*GERMAN, "schönest", "Quantenchromodynamik"]
    assert [hf_tok(t)["input_ids"] for t in texts] == [tok.encode(t) for t in texts]
    assert hf_tok.mask_token_id == tok.mask_id and len(hf_tok) == tok.vocab_size
    with torch.no_grad():
        assert (exported(**small).logits[real] - ours).abs().max() <= 1e-5
    assert not (tmp_path / "trim-hf" / "kept_pieces.json").exists()


def test_trimmed_model_is_a_sentencepiece_model_of_the_kept_pieces(xlmr_full, tmp_path):
    """The written .model holds the kept pieces only, in their old order with their scores and types, and
    sentencepiece itself encodes with it as xlmlib does (model id = spm id + 1 past the three specials)."""
    folder, _, corpus = xlmr_full
    xlmlib.trim_vocab(folder, tmp_path / "trim", corpus=[corpus])
    tok, full_tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "trim"), xlmlib.Tokenizer.from_pretrained(folder)
    small, full = sentencepiece_model(tmp_path / "trim"), sentencepiece_model(folder)
    scores = {p.piece: (p.score, p.type) for p in full.pieces}
    pieces = [p.piece for p in small.pieces]
    assert pieces[:3] == ["<unk>", "<s>", "</s>"] and len(pieces) == tok.vocab_size - 2
    assert all((p.score, p.type) == scores[p.piece] for p in small.pieces)
    old_order = [full_tok.token_to_id(p) for p in pieces[3:]]
    assert old_order == sorted(old_order)
    sp = spm_lib.SentencePieceProcessor(model_file=str(tmp_path / "trim" / "sentencepiece.bpe.model"))
    assert [[i + 1 for i in ids] for ids in sp.encode(GERMAN)] == [tok.encode(t, add_special_tokens=False)
                                                                     for t in GERMAN]
    # The normaliser's precompiled charsmap (237,539 bytes) and a few dozen pieces; the full model is 5,568,926.
    assert (tmp_path / "trim" / "sentencepiece.bpe.model").stat().st_size < 240_000


def test_old_form_trimmed_folder_still_loads(xlmr_full, tmp_path):
    """A folder written the old way (the whole XLM-R .model + kept_pieces.json + our class name) reads as the
    trimmed SentencePiece model it stands for: the same ids and outputs as the new form; convert --to hf
    writes the new form, which AutoTokenizer reads with the same ids."""
    folder, _, corpus = xlmr_full
    xlmlib.trim_vocab(folder, tmp_path / "new", corpus=[corpus])
    new_tok, full_tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "new"), xlmlib.Tokenizer.from_pretrained(folder)
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "new", old)
    shutil.copy(folder / "sentencepiece.bpe.model", old)
    kept = [full_tok.token_to_id(new_tok.id_to_token(i)) - 1 for i in range(4, new_tok.mask_id)]
    (old / "kept_pieces.json").write_text(json.dumps({"kept_spm_ids": kept}))
    (old / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRTokenizer", "model_max_length": 512}))
    model, tok = xlmlib.load(old)
    assert tok.vocab_size == new_tok.vocab_size and tok.mask_id == new_tok.mask_id
    texts = [*GERMAN, "schönest"]
    assert [tok.encode(t) for t in texts] == [new_tok.encode(t) for t in texts]
    with torch.no_grad():
        assert torch.equal(model(**tok(GERMAN)).logits, xlmlib.load(tmp_path / "new")[0](**new_tok(GERMAN)).logits)
    xlmlib.convert(old, tmp_path / "old-hf", to="hf")
    assert not (tmp_path / "old-hf" / "kept_pieces.json").exists()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "old-hf")
    assert [hf_tok(t)["input_ids"] for t in texts] == [tok.encode(t) for t in texts]


def test_fp16_model_stays_fp16(assets, tmp_path):
    """Issue 20: trim-vocab wrote fp32 weights from an fp16 model. The trimmed rows are the source's fp16 rows."""
    src = save_tiny_xlmr(tmp_path / "fp32", assets)
    model = xlmlib.MaskedLM.from_pretrained(src).half()
    model.save_pretrained(tmp_path / "fp16")
    xlmlib.Tokenizer.from_pretrained(src).save_pretrained(tmp_path / "fp16")
    corpus = tmp_path / "de.txt"
    corpus.write_text("\n".join(GERMAN) + "\n", encoding="utf-8")
    xlmlib.trim_vocab(tmp_path / "fp16", tmp_path / "trim", corpus=[corpus])
    written = load_file(tmp_path / "trim" / "model.safetensors")
    assert {t.dtype for t in written.values()} == {torch.float16}
    tok, full_tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "trim"), xlmlib.Tokenizer.from_pretrained(src)
    old_of = _old_ids(full_tok, tok)
    assert torch.equal(written["embed.tokens.weight"], model.embed.tokens.weight.detach()[old_of])


def test_xlmr_max_pieces_keep_and_report(xlmr_full, tmp_path):
    folder, _, corpus = xlmr_full
    report = xlmlib.trim_vocab(folder, tmp_path / "capped", corpus=[corpus], max_pieces=5, keep=["▁Zürich"])
    tok = xlmlib.Tokenizer.from_pretrained(tmp_path / "capped")
    assert tok.vocab_size == 4 + 5 + 1 + 1  # specials, 5 pieces, the kept extra, <mask>
    assert tok.token_to_id("▁Zürich") != tok.unk_id
    assert 0 < report.dropped_rate < 1 and report.params_after < report.params_before
    # Dropped pieces fall back to the 6 kept ones where they can, else <unk>: more tokens, some of them <unk>.
    assert 0 < report.unk_rate < 1 and report.corpus_tokens_after != report.corpus_tokens
    record = json.loads((tmp_path / "capped" / "trim.json").read_text())
    assert record["vocab_before"] == 250002 and record["max_pieces"] == 5
    assert record["unk_rate"] == report.unk_rate and record["dropped_rate"] == report.dropped_rate


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
    # XLM keeps its behaviour: vocab.json + merges.txt, which transformers' XLMTokenizer reads with our ids.
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "trim")
    assert [hf_tok(t)["input_ids"] for t in [*english, "zebra"]] == [tok.encode(t, lang="en") for t in [*english, "zebra"]]


def test_cli_trim_and_info(xlmr_full, tmp_path, capsys):
    folder, _, corpus = xlmr_full
    assert cli.main(["trim-vocab", str(folder), str(tmp_path / "t"), "--corpus", str(corpus)]) == 0
    assert "250,002 ->" in capsys.readouterr().out
    assert cli.main(["info", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "trimmed from 250,002" in out and "file size:" in out
