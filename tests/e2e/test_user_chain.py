"""The user's whole path as one chain of commands (subprocesses, as a user types them): pretrain a tiny
XLM-R-shaped model on German Tatoeba lines -> fill-mask with the pretrained folder -> fine-tune on German
PAWS-X -> xlmlib.load the best model -> convert --to hf -> transformers' AutoTokenizer and
AutoModelForSequenceClassification give our ids and logits. Then the same export check for XLM (the real
en-fr BPE files) and for a folder an older xlmlib saved. References: transformers' own outputs on the
exported folder, compared within 1e-5 (fp32, as tests/parity)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import xlmlib

from ..folders import run_xlmlib as run
from ..folders import save_tiny_xlmr, tiny_model

transformers = pytest.importorskip("transformers")
ATOL = 1e-5  # fp32 parity tolerance used throughout tests/parity


def _same_as_transformers(folder: Path, auto_class: str, texts, text_pair=None, **call):
    """Ids from AutoTokenizer equal ours; logits of the Auto model on them equal ours."""
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    hf_model = getattr(transformers, auto_class).from_pretrained(folder).eval()
    model, tok = xlmlib.load(folder, task="sequence-classification" if "Sequence" in auto_class else "masked-lm")
    ours = tok(texts, text_pair, **call)
    theirs = hf_tok(texts, text_pair, padding=True, return_tensors="pt")
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    extra = {"langs": ours["langs"]} if "langs" in ours else {}
    with torch.no_grad():
        expected = hf_model(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"], **extra).logits
        got = model(**ours).logits
    real = ours["attention_mask"].bool()
    if got.dim() == 3:
        got, expected = got[real], expected[real]
    assert (got - expected).abs().max().item() <= ATOL


def test_pretrain_fill_mask_finetune_load_export_transformers(tmp_path, assets):
    save_tiny_xlmr(tmp_path / "tiny", assets)
    lines = (assets / "tatoeba-laser-v1" / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()[:200]
    (tmp_path / "de.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # No --tokenizer: the one saved beside --model binarizes the text and is saved beside OUT/model.
    run("pretrain", "--model", "tiny", "--objective", "mlm", "--train", "de.txt", "--langs", "de", "--steps", "3",
        "--batch-size", "4", "--seq-len", "32", "--lr", "1e-3", "--out", "pre", "--no-progress", cwd=tmp_path)
    filled = run("fill-mask", "--model", "pre/model", "Der Hund <mask> im Garten.", cwd=tmp_path)
    assert "Der Hund " in filled and "mask 1:" in filled
    rows = (assets / "pawsx-de" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(rows[:41]) + "\n", encoding="utf-8")  # header + 40 pairs
    (tmp_path / "dev.tsv").write_text("\n".join([rows[0], *rows[41:61]]) + "\n", encoding="utf-8")
    run("finetune", "--model", "pre/model", "--train", "train.tsv", "--dev", "dev.tsv", "--lang", "de",
        "--steps", "2", "--batch-size", "4", "--eval-every", "1", "--out", "ft", "--no-progress", cwd=tmp_path)
    model, tok = xlmlib.load(tmp_path / "ft" / "best", task="sequence-classification")
    assert tok is not None and model.config.num_labels == 2
    run("convert", "ft/best", "export", "--to", "hf", cwd=tmp_path)
    config = json.loads((tmp_path / "export" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "XLMRobertaTokenizer"
    pairs = [r.split("\t") for r in rows[61:65]]
    _same_as_transformers(tmp_path / "export", "AutoModelForSequenceClassification",
                          [p[1] for p in pairs], text_pair=[p[2] for p in pairs])


def test_export_of_a_folder_an_older_xlmlib_saved(tmp_path, assets):
    """Folders saved before this fix say "XLMRTokenizer"; convert --to hf writes transformers' name."""
    folder = save_tiny_xlmr(tmp_path / "old", assets)
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "XLMRTokenizer", "model_max_length": 512}')
    (folder / "special_tokens_map.json").unlink(missing_ok=True)
    xlmlib.convert(folder, tmp_path / "export", to="hf")
    _same_as_transformers(tmp_path / "export", "AutoModelForMaskedLM",
                          ["Paris is the <mask> of France.", "Der Hund schläft."])


def test_xlm_export_with_the_released_bpe_files(tmp_path, assets):
    """A model folder holding XLM's released codes_enfr + vocab_enfr: the HF export gets vocab.json +
    merges.txt and an XLMTokenizer config; transformers' XLM tokenizer and model agree with ours."""
    tiny_model(xlmlib.MaskedLM, "xlm-mlm-enfr-1024", ffn_dim=64).save_pretrained(tmp_path / "xlm")
    for name in ("codes_enfr", "vocab_enfr"):
        shutil.copyfile(assets / "xlm-bpe-fastbpe" / name, tmp_path / "xlm" / name)
    xlmlib.convert(tmp_path / "xlm", tmp_path / "export", to="hf")
    assert (tmp_path / "export" / "vocab.json").is_file() and (tmp_path / "export" / "merges.txt").is_file()
    _same_as_transformers(tmp_path / "export", "AutoModelForMaskedLM",
                          ["Hello world!", "The cat sat on the mat, didn't it?"], lang="en")
