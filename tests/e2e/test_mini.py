"""The shipped model xlmlib-mini (xlmlib/models/xlmlib-mini, trained by xlmlib; its card is the README.md there)
loads by name offline, has learned some real language, and is the size its card says. No retraining here.

Held-out lines are the Tatoeba lines the model never trained on: line i with i % 10 == 9 of each file
(xlmlib/tatoeba.py). The threshold is the issue's acceptance criterion (2x the unigram baseline), not a
measured value; the measured ones are in the model card. The issue's other check, retrieval at 2x a randomly
initialised twin, does not hold for this model (card, table 2: MLM + TLM 6.8% X->en, random twin 8.7%), so
it is not asserted here.
"""

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

import xlmlib
from xlmlib.hub import SHIPPED
from xlmlib.intrinsic import masked_token_accuracy, unigram_accuracy
from xlmlib.tatoeba import read_pairs, split

ROOT = Path(__file__).resolve().parents[2]
MINI = SHIPPED / "xlmlib-mini"


def heldout(assets, lang):
    """The held-out pairs of one language (xlmlib/tatoeba.py's split), as two line lists."""
    pairs = split(read_pairs(assets / "tatoeba-laser-v1", [lang]))[1][lang]
    return [x for x, _ in pairs], [e for _, e in pairs]


def test_loads_by_name_in_a_fresh_process_offline(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    code = ("import xlmlib; m, t = xlmlib.load('xlmlib-mini'); c = xlmlib.MaskedLM.from_pretrained('xlmlib-mini');"
            "print(type(m).__name__, t.vocab_size, c.config.vocab_size)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MaskedLM", "31005", "31005"]
    cli = subprocess.run([sys.executable, "-m", "xlmlib.cli", "fill-mask", "Paris is the <mask> of France."],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("mask 1:") and len(cli.stdout.splitlines()) == 6  # the header and the top 5


def unigram_baseline(tok, lines, targets) -> float:
    """Top-1 of always predicting the most frequent piece of `lines` themselves: it knows the test
    distribution, which makes it stronger than the card's baseline (counts of the training split)."""
    counts = Counter(i for row in tok(lines, padding=False, return_tensors=None)["input_ids"] for i in row)
    vocab = torch.zeros(tok.vocab_size, dtype=torch.long)
    vocab[list(counts)] = torch.tensor(list(counts.values()))
    return unigram_accuracy(vocab.numpy(), targets, exclude=[0, 1, 2, 3, tok.mask_id])["top1"]


def test_fill_mask_beats_the_unigram_baseline_on_held_out_lines(assets):
    """200 lines drawn (seed 0) from every held-out sentence: the X sides of all 112 pairs and each held-out
    English sentence once, the card's "all" row (2.6x its unigram baseline there). Measured when the test was
    written: top-1 25.1% vs 9.1% for this test's baseline; with the tokenizer of issue 24, a SentencePiece model of
    the kept pieces, 18.0% vs 8.0%."""
    langs = sorted(p.name.split(".")[1].split("-")[0] for p in (assets / "tatoeba-laser-v1").glob("tatoeba.*-eng.eng"))
    sides = [heldout(assets, lang) for lang in langs]
    pool = [line for x, _ in sides for line in x] + sorted({line for _, en in sides for line in en})
    lines = random.Random(0).sample(pool, 200)
    model, tok = xlmlib.load("xlmlib-mini")
    res = masked_token_accuracy(model, tok, lines, seed=0)
    base = unigram_baseline(tok, lines, res["targets"])
    assert len(langs) == 112 and res["n"] > 200
    assert res["top1"] >= 2 * base, (res["top1"], base)


def test_fill_mask_beats_the_unigram_baseline_on_english(assets):
    """English, the pivot of every TLM pair and the largest corpus: 3.5x the unigram baseline in the card
    (measured here when the test was written: 34.5% vs 6.8%; with the tokenizer of issue 24: 32.9% vs 7.9%)."""
    model, tok = xlmlib.load("xlmlib-mini")
    lines = [line for lang in ("deu", "fra", "spa", "rus") for line in heldout(assets, lang)[1][:50]]
    assert len(lines) == 200
    res = masked_token_accuracy(model, tok, lines, seed=0)
    base = unigram_baseline(tok, lines, res["targets"])
    assert res["n"] > 200
    assert res["top1"] >= 2 * base, (res["top1"], base)


def test_sizes_match_the_card():
    card = (MINI / "README.md").read_text(encoding="utf-8")
    weights = MINI / "model.safetensors"
    assert weights.stat().st_size <= 16_000_000  # the budget for the shipped weights
    stated = int(re.search(r"weights file: ([\d,]+) bytes", card).group(1).replace(",", ""))
    assert stated == weights.stat().st_size
    model = xlmlib.MaskedLM.from_pretrained("xlmlib-mini")
    params = int(re.search(r"([\d,]+) parameters", card).group(1).replace(",", ""))
    assert params == sum(p.numel() for p in model.parameters())
    config = json.loads((MINI / "config.json").read_text())
    assert config["model"] == xlmlib.ModelConfig.from_preset("xlmlib-mini").to_dict()
