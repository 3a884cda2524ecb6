"""Text too long for the model, per entry point (README "Behaviour worth knowing"): the tokenizer cuts to
max_length and warns once per call; embed cuts to the model's limit and warns once, truncation=False raises
naming the text (the CLI: the line); `xlmlib finetune` clamps --max-len to the model. Also --tokenizer on the
inference verbs. A tiny random XLM-R-shaped model with a 32-token position table and the real XLM-R
SentencePiece vocabulary (shared assets)."""

import logging
import warnings

import numpy as np
import pytest
import torch

import xlmlib
from xlmlib.cli import main
from xlmlib.tokenize.base import TruncationWarning

from ..folders import tiny_model

LIMIT = 32  # 34 position rows - XLM-R's offset of 2


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("short")
    model = tiny_model(max_positions=LIMIT + 2, dropout=0.0, attention_dropout=0.0)
    model.save_pretrained(folder / "model")  # weights only: the tokenizer lives elsewhere
    xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt").save_pretrained(folder / "tok")
    return folder


LONG = " ".join(["Hund"] * 100)  # "▁Hund" is one piece: 100 pieces + <s> + </s>


def test_tokenizer_cuts_and_warns_once_per_call(short_dir):
    tok = xlmlib.Tokenizer.from_pretrained(short_dir / "tok")
    with pytest.warns(TruncationWarning, match="truncated 2 of 3 sequences to 20 tokens") as caught:
        batch = tok([LONG, "kurz", LONG], max_length=20)
    assert len(caught) == 1 and batch["input_ids"].shape == (3, 20)
    assert batch["input_ids"][0, -1].item() == tok.eos_id
    with pytest.warns(TruncationWarning, match="truncated 1 of 1 sequences to 20 tokens"):
        tok([LONG], ["kurz"], max_length=20)  # the pair path counts too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tok([LONG], truncation=False)["input_ids"].shape == (1, 102)
        tok(["kurz"], max_length=20)  # nothing cut, nothing said


def test_embed_cuts_to_the_model_limit_with_one_warning(short_dir):
    model, _ = xlmlib.load(short_dir / "model", task="encoder")
    tok = xlmlib.Tokenizer.from_pretrained(short_dir / "tok")
    texts = ["kurz", LONG, LONG + " Katze", "auch kurz"]
    with pytest.warns(TruncationWarning, match=f"embed: truncated 2 of 4 sequences to {LIMIT} tokens") as caught:
        vectors = xlmlib.embed(model, tok, texts, batch_size=2)
    assert len(caught) == 1 and vectors.shape == (4, 16)
    # A cut text embeds as its first LIMIT - 1 tokens + </s>: the two long texts share those.
    torch.testing.assert_close(vectors[1], vectors[2])
    with pytest.raises(xlmlib.InputTooLong, match=f"text 1 has 102 tokens; the model takes at most {LIMIT}"):
        xlmlib.embed(model, tok, texts, truncation=False)


def test_embed_cli_names_the_line_and_takes_a_tokenizer(short_dir, tmp_path, capsys):
    lines = tmp_path / "in.txt"
    lines.write_text(f"kurz\nauch kurz\n{LONG}\n", encoding="utf-8")
    common = ["embed", "--model", str(short_dir / "model"), "--input", str(lines), "--output", str(tmp_path / "v.npy")]
    assert main(common) == 1
    assert "no tokenizer files beside" in (err := capsys.readouterr().err) and "pass --tokenizer" in err
    assert main([*common, "--tokenizer", str(short_dir / "tok"), "--no-truncation"]) == 1
    assert f"in.txt:3: the line has 102 tokens; the model takes at most {LIMIT}" in capsys.readouterr().err
    with pytest.warns(TruncationWarning, match="truncated 1 of 3"):
        assert main([*common, "--tokenizer", str(short_dir / "tok")]) == 0
    assert np.load(tmp_path / "v.npy").shape == (3, 16)


def test_fill_mask_and_generate_take_a_tokenizer(short_dir, capsys):
    model, tok = str(short_dir / "model"), str(short_dir / "tok")
    assert main(["fill-mask", "--model", model, "--tokenizer", tok, "Das ist <mask> gut."]) == 0
    assert "Das ist " in capsys.readouterr().out
    assert main(["generate", "--model", model, "--tokenizer", tok, "Das ist", "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().out.startswith("Das ist")


def test_finetune_command_clamps_max_len(short_dir, tmp_path, caplog):
    train = tmp_path / "train.jsonl"
    train.write_text(f'{{"text": "{LONG}", "label": "a"}}\n{{"text": "kurz", "label": "b"}}\n', encoding="utf-8")
    argv = ["finetune", "--model", str(short_dir / "model"), "--tokenizer", str(short_dir / "tok"), "--train",
            str(train), "--dev", str(train), "--steps", "1", "--batch-size", "2", "--out", str(tmp_path / "run"),
            "--no-progress"]  # --max-len left at its default, 128
    with caplog.at_level(logging.WARNING), pytest.warns(TruncationWarning, match=f"to max_len {LIMIT} tokens"):
        assert main(argv) == 0
    assert f"max_len 128 is longer than this model takes; using its limit, {LIMIT}" in caplog.text
    _, tok = xlmlib.load(tmp_path / "run" / "best", task="sequence-classification")
    assert tok is not None  # the best model's folder carries its tokenizer
