"""Vocabulary extension (xlmlib.vocab.extend.extend_vocab): every old id keeps its piece, row and LM bias; <mask>
moves to the new last id with its row and bias; FVT rows are the mean of the old rows of the old tokenizer's
split, random rows the model's own initialisation; sentencepiece, xlmlib and transformers read the extended
folder with identical ids; text in old languages keeps its segmentation (real Tatoeba text).

The model is the tiny random XLM-R of tests/folders.py beside the real XLM-R SentencePiece model (250,002 ids),
extended with Georgian (Tatoeba kat, training lines i % 10 != 9), and the shipped xlmlib-mini.
"""

from __future__ import annotations

import argparse
import json
import statistics

import pytest
import sentencepiece
import torch
from safetensors.torch import load_file

import xlmlib
from xlmlib.hub import SHIPPED
from xlmlib.tokenize import XLMTokenizer
from xlmlib.vocab import fvt
from xlmlib.vocab.cli import configure_extend_vocab, run_extend_vocab
from xlmlib.vocab.extend import extend_vocab

from ..folders import save_tiny_xlmr

transformers = pytest.importorskip("transformers")
OLD = ("deu", "fra", "spa", "rus", "ara", "hin", "tur", "vie", "ind", "ell")


def tatoeba(assets, lang: str, held: bool, n: int | None = None) -> list[str]:
    path = assets / "tatoeba-laser-v1" / f"tatoeba.{lang}-eng.{lang}"
    lines = [line for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()) if (i % 10 == 9) == held]
    return lines[:n]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def extended(assets, tmp_path_factory):
    """(source folder, FVT-extended folder, report, reference lines)."""
    work = tmp_path_factory.mktemp("extend")
    src = save_tiny_xlmr(work / "tiny", assets)
    corpus = write(work / "train.kat", tatoeba(assets, "kat", held=False))
    ref = [line for g in ("deu", "rus") for line in tatoeba(assets, g, held=False, n=100)]
    report = extend_vocab(src, work / "ext", corpus=[corpus], new_pieces=500, init="fvt",
                          reference=[write(work / "ref.txt", ref)])
    return src, work / "ext", report, ref


def test_old_ids_keep_pieces_rows_and_bias_and_mask_moves(extended):
    src, ext, report, _ = extended
    old_tok, new_tok = xlmlib.Tokenizer.from_pretrained(src), xlmlib.Tokenizer.from_pretrained(ext)
    old, new = load_file(src / "model.safetensors"), load_file(ext / "model.safetensors")
    m_old, m_new = old_tok.mask_id, new_tok.mask_id
    added = report.added_pieces
    assert m_old == 250001 and 0 < added <= report.missing_pieces <= report.trained_pieces <= 500
    assert m_new == m_old + added == new_tok.vocab_size - 1 == report.mask_after
    assert [new_tok.id_to_token(i) for i in range(m_old)] == [old_tok.id_to_token(i) for i in range(m_old)]
    assert new_tok.token_to_id("<mask>") == m_new and new_tok.id_to_token(m_old) not in ("<mask>", "<unk>")
    for key in ("embed.tokens.weight", "lm_head.bias"):
        assert new[key].shape[0] == m_new + 1
        assert torch.equal(new[key][:m_old], old[key][:m_old])  # every old id keeps its row
        assert torch.equal(new[key][m_new], old[key][m_old])  # <mask>'s row and bias moved
    config = json.loads((ext / "config.json").read_text())["model"]
    assert config["vocab_size"] == m_new + 1 and config["mask_index"] == m_new
    record = json.loads((ext / "extend.json").read_text())
    assert record["added_pieces"] == added and record["init"] == "fvt" and record["new_pieces"] == 500
    # The added pieces are new NORMAL pieces; old-language text still encodes to the old ids.
    assert all(old_tok.token_to_id(new_tok.id_to_token(i)) == old_tok.unk_id for i in range(m_old, m_new))
    assert new_tok.encode("Das Wetter ist schön.") == old_tok.encode("Das Wetter ist schön.")


def test_fvt_rows_are_the_mean_of_the_old_split(extended):
    """For a new piece ▁w, the old tokenizer's split of the word " w" (its public encode, no specials); for a
    word-internal piece, the old model's split of its text with no dummy prefix."""
    src, ext, report, _ = extended
    old_tok, new_tok = xlmlib.Tokenizer.from_pretrained(src), xlmlib.Tokenizer.from_pretrained(ext)
    old, new = load_file(src / "model.safetensors"), load_file(ext / "model.safetensors")
    checked = 0
    for i in range(old_tok.mask_id, new_tok.mask_id):
        piece = new_tok.id_to_token(i)
        if piece.startswith("▁") and "▁" not in piece[1:]:
            split = old_tok.encode(" " + piece[1:], add_special_tokens=False)
            assert torch.allclose(new["embed.tokens.weight"][i], old["embed.tokens.weight"][split].mean(0), atol=1e-7)
            assert torch.allclose(new["lm_head.bias"][i], old["lm_head.bias"][split].mean(0), atol=1e-7)
            checked += 1
    assert checked > 50
    # Word-internal pieces, hand-checked against the vocabulary: "hof" is one piece; "chromodynamik" has no
    # word-initial ▁ (the word "chromodynamik" would start with ▁chr).
    assert [[old_tok.id_to_token(i) for i in s] for s in fvt.old_splits(old_tok, ["hof", "chromodynamik"])] == [
        ["hof"], ["ch", "rom", "ody", "na", "mik"]]
    assert report.unk_only_rows == 0  # XLM-R spells every Georgian character


@pytest.mark.filterwarnings("ignore:extend_vocab. no reference text")
def test_random_rows_are_the_models_own_init(assets, extended, tmp_path):
    src = extended[0]
    corpus = write(tmp_path / "train.kat", tatoeba(assets, "kat", held=False))
    a = extend_vocab(src, tmp_path / "a", corpus=[corpus], new_pieces=500, init="random", seed=1)
    weights = load_file(tmp_path / "a" / "model.safetensors")
    new = weights["embed.tokens.weight"][a.mask_before:a.mask_after]
    n, dim = new.shape
    assert torch.equal(new, fvt.random_rows(n, dim, 0.02, seed=1))  # seeded: the same rows every time
    assert not torch.equal(new, fvt.random_rows(n, dim, 0.02, seed=2))
    std = xlmlib.ModelConfig.from_preset("xlm-roberta-base").init_std  # normal(0, 0.02), model.init_weights
    assert std == 0.02 and abs(new.std().item() - std) < 0.1 * std and abs(new.mean().item()) < 0.1 * std
    assert not weights["lm_head.bias"][a.mask_before:a.mask_after].any()  # the LM bias starts at 0


def test_sentencepiece_xlmlib_and_transformers_agree_on_the_extended_folder(assets, extended):
    _, ext, _, _ = extended
    texts = [*tatoeba(assets, "kat", held=True, n=20), "Das Wetter ist schön.", "Paris is the <mask> of France."]
    tok = xlmlib.Tokenizer.from_pretrained(ext)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(ext / "sentencepiece.bpe.model"))
    plain = [t for t in texts if "<mask>" not in t]
    assert [[0, *(i + 1 if i else 3 for i in ids), 2] for ids in sp.encode(plain)] == [tok.encode(t) for t in plain]
    hf_tok = transformers.AutoTokenizer.from_pretrained(ext)
    assert [hf_tok(t)["input_ids"] for t in texts] == [tok.encode(t) for t in texts]
    assert hf_tok.mask_token_id == tok.mask_id == len(hf_tok) - 1
    assert any(i >= 250001 for t in texts for i in tok.encode(t)[1:-1])  # the Georgian lines use new pieces


def test_extended_folder_exports_to_transformers(assets, extended, tmp_path):
    _, ext, _, _ = extended
    texts = [*tatoeba(assets, "kat", held=True, n=20), "Paris is the <mask> of France."]
    model, tok = xlmlib.load(ext)
    xlmlib.convert(ext, tmp_path / "hf", to="hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert [hf_tok(t)["input_ids"] for t in texts] == [tok.encode(t) for t in texts]
    assert xlmlib.load(tmp_path / "hf")[0].config.mask_index == tok.mask_id
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    batch = tok(texts)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        assert (hf(**batch).logits[real] - model(**batch).logits[real]).abs().max() <= 1e-5


def test_old_languages_keep_their_segmentation_on_the_mini(assets, tmp_path):
    """The shipped xlmlib-mini (31,005 ids) extended with three Latin/Cyrillic-script languages it covers
    poorly (Kabyle, Tatar, Meadow Mari: their new pieces compete with old ones), the reference text being 300
    training lines of each of 10 old languages: at least 98% (the issue's goal) of the held-out lines of those
    languages (i % 10 == 9, 1,000 lines) keep their ids. Measured when written: 98.4% (the calibration lowered
    the offset from -2.0 to -6.0 and left 20 of 2,837 missing pieces out), and the new languages' pieces per word
    fell from 2.94 to 2.26."""
    corpus = [write(tmp_path / f"train.{g}", tatoeba(assets, g, held=False)) for g in ("kab", "tat", "mhr")]
    ref = write(tmp_path / "ref.txt", [line for g in OLD for line in tatoeba(assets, g, held=False, n=300)])
    report = extend_vocab(SHIPPED / "xlmlib-mini", tmp_path / "ext", corpus=corpus, new_pieces=4000, reference=[ref])
    old_tok, new_tok = xlmlib.Tokenizer.from_pretrained(SHIPPED / "xlmlib-mini"), xlmlib.Tokenizer.from_pretrained(
        tmp_path / "ext")
    held = [line for g in OLD for line in tatoeba(assets, g, held=True)]
    assert statistics.mean(new_tok.encode(x) == old_tok.encode(x) for x in held) >= 0.98
    assert report.left_out > 0 and report.check_unchanged >= 0.995
    new_held = [line for g in ("kab", "tat", "mhr") for line in tatoeba(assets, g, held=True)]
    words = sum(len(x.split()) for x in new_held)
    per_word = [sum(len(t.encode(x, add_special_tokens=False)) for x in new_held) / words for t in (old_tok, new_tok)]
    assert per_word[1] < 0.85 * per_word[0]
    weights = load_file(tmp_path / "ext" / "model.safetensors")
    assert weights["embed.tokens.weight"].dtype == torch.float16  # the mini's dtype is kept


def test_errors(assets, extended, tmp_path):
    src, ext, _, _ = extended
    corpus = write(tmp_path / "c.txt", tatoeba(assets, "kat", held=False, n=50))
    with pytest.raises(FileExistsError):
        extend_vocab(src, ext, corpus=[corpus])
    with pytest.raises(ValueError, match="init must be one of"):
        extend_vocab(src, tmp_path / "x", corpus=[corpus], init="zeros")
    with pytest.raises(FileNotFoundError, match="no-such.txt"):
        extend_vocab(src, tmp_path / "x", corpus=[tmp_path / "no-such.txt"])
    bpe = assets / "xlm-bpe-fastbpe"
    XLMTokenizer.from_released(bpe / "codes_enfr", bpe / "vocab_enfr").save_pretrained(tmp_path / "xlm")
    with pytest.raises(ValueError, match="SentencePiece"):
        extend_vocab(tmp_path / "xlm", tmp_path / "x", corpus=[corpus])
    with pytest.warns(UserWarning, match="no reference text"):
        extend_vocab(src, tmp_path / "noref", corpus=[corpus], new_pieces=100)
    assert not list(tmp_path.glob(".*partial"))


def test_cli_verb(assets, extended, tmp_path, capsys):
    src, _, _, ref = extended
    corpus = write(tmp_path / "train.kat", tatoeba(assets, "kat", held=False))
    p = argparse.ArgumentParser()
    configure_extend_vocab(p)
    args = p.parse_args([str(src), str(tmp_path / "out"), "--corpus", str(corpus), "--new-pieces", "500",
                         "--init", "random", "--reference", str(write(tmp_path / "ref.txt", ref))])
    assert run_extend_vocab(args) == 0
    out = capsys.readouterr().out
    assert "vocabulary 250,002 ->" in out and "<mask> 250001 ->" in out and "rows random" in out
    assert json.loads((tmp_path / "out" / "extend.json").read_text())["init"] == "random"
