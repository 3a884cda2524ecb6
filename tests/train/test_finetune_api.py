"""xlmlib.finetune, the public fine-tuning API: it takes what xlmlib.load returns and frames every input
exactly once; a framing tokenizer handed to the internal Encoded fails loudly; text cut to fit is reported;
max_len longer than the model takes is clamped with a warning. A tiny random XLM-R-shaped model with the
real XLM-R SentencePiece vocabulary (shared assets) and short position table stands in for a checkpoint."""

import json
import logging

import pytest
import torch

import xlmlib
from xlmlib.tokenize.base import TruncationWarning
from xlmlib.train.finetune import Encoded
from xlmlib.train.readers import Example, to_examples

from ..folders import save_tiny_xlmr

# XLM-R framing (formats.md section 3): <s>=0 A </s>=2 </s>=2 B </s>=2.
BOS, EOS = 0, 2
PAIRS = [{"premise": "Der Hund schläft.", "hypothesis": "Ein Tier ruht.", "label": "entailment", "lang": "de"},
         {"premise": "Es regnet.", "hypothesis": "Die Sonne scheint.", "label": "contradiction", "lang": "de"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("tiny-clf")
    # 34 position rows - offset 2 = 32 tokens: short enough that the default max_len (128) must be clamped.
    return save_tiny_xlmr(folder, assets, max_positions=34, dropout=0.0, attention_dropout=0.0)


def _load(tiny_dir):
    return xlmlib.load(tiny_dir, task="sequence-classification", num_labels=2)


def test_finetune_frames_each_pair_once(tiny_dir, tmp_path):
    model, tok = _load(tiny_dir)
    result = xlmlib.finetune(model, tok, PAIRS, PAIRS, steps=2, batch_size=2, out=tmp_path / "run", progress=False)
    assert result["labels"] == ["contradiction", "entailment"]
    seen = []
    from xlmlib.train import finetune as ft

    data = Encoded(to_examples(PAIRS, "sequence"), ft.text_encoder(tok), model.config, result["labels"],
                   task="sequence", max_len=32, langs={})
    for row, pair in zip(data.rows, PAIRS):
        a = tok.encode(pair["premise"], add_special_tokens=False)
        b = tok.encode(pair["hypothesis"], add_special_tokens=False)
        assert row == [BOS, *a, EOS, EOS, *b, EOS]  # today's main gave [0, 0, ..., 2, 2, 2, 0, ..., 2, 2]
        seen.append(row.count(BOS))
    assert seen == [1, 1]


def test_encoded_refuses_a_framing_tokenizer(tiny_dir):
    model, tok = _load(tiny_dir)
    examples = [Example("Der Hund schläft.", "", "0")]
    with pytest.raises(TypeError, match="frames what it encodes"):
        Encoded(examples, tok, model.config, ["0", "1"], task="sequence", max_len=32, langs={})


def test_finetune_reads_paths_and_saves_a_self_contained_best_folder(tiny_dir, tmp_path):
    model, tok = _load(tiny_dir)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    result = xlmlib.finetune(model, tok, str(path), [path], test=path, steps=2, batch_size=2, eval_every=1,
                             out=tmp_path / "run", progress=False)
    assert result["test"]["n"] == 2 and set(result["test"]["per_lang"]) == {"de"}
    reloaded, reloaded_tok = xlmlib.load(tmp_path / "run" / "best", task="sequence-classification")
    assert reloaded_tok is not None and reloaded_tok.vocab_size == tok.vocab_size
    batch = tok(["Der Hund schläft."])
    torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_finetune_clamps_max_len_to_the_model_and_reports_cut_text(tiny_dir, tmp_path, caplog):
    model, tok = _load(tiny_dir)
    long = {"text": " ".join(["Hund"] * 60), "label": "a"}
    with caplog.at_level(logging.WARNING), pytest.warns(TruncationWarning, match="truncated 1 of 2 examples to max_len 32"):
        xlmlib.finetune(model, tok, [long, {"text": "kurz", "label": "b"}], steps=1, batch_size=2,
                        out=tmp_path / "run", progress=False)  # default max_len 128 > the model's 32
    assert "max_len 128 is longer than this model takes; using its limit, 32" in caplog.text


def test_finetune_rejects_bad_input(tiny_dir, tmp_path):
    model, tok = _load(tiny_dir)
    encoder, _ = xlmlib.load(tiny_dir, task="encoder")
    with pytest.raises(TypeError, match="SequenceClassifier, TokenClassifier or QuestionAnswering model, got Encoder"):
        xlmlib.finetune(encoder, tok, PAIRS)
    with pytest.raises(ValueError, match="the model has 2 labels but the data has 3"):
        xlmlib.finetune(model, tok, [*PAIRS, {"text": "x", "label": "neutral"}])
    with pytest.raises(FileNotFoundError, match="train: nope.tsv: no such file or directory"):
        xlmlib.finetune(model, tok, "nope.tsv")
    with pytest.raises(TypeError, match=r"train\[0\]: expected a dict, an Example or a file path, got int"):
        xlmlib.finetune(model, tok, [3])
    with pytest.raises(ValueError, match="unknown key.*stepz"):
        xlmlib.finetune(model, tok, PAIRS, stepz=3, out=tmp_path / "x")
    with pytest.raises(TypeError, match="takes task as its own argument"):
        xlmlib.finetune(model, tok, PAIRS, task="token")
    with pytest.raises(ValueError, match="no tokenizer"):
        xlmlib.finetune(model, None, PAIRS, out=tmp_path / "y")
