"""XLM's MLM + TLM recipe (objective "mlm+tlm", the recipe of the shipped xlmlib-mini): alternating steps,
several language pairs sampled with smoothing, glob inputs, and corpora smaller than one batch."""

import json
from pathlib import Path

import numpy as np
import pytest

from xlmlib import ModelConfig, cli
from xlmlib.objectives import language_sampling_probs
from xlmlib.train import distributed as D
from xlmlib.train.config import TrainConfig
from xlmlib.train.data import EpochOrder
from xlmlib.train.pretrain import build_source, file_langs, pair_files

from ..folders import tiny_model

WORDS = ["<s>", "<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(40)] + ["<mask>"]


def test_small_corpus_repeats_within_a_batch():
    order = EpochOrder(3, 8, seed=1, shuffle=True, repeat=True)
    batch = order(0)
    assert len(batch) == 8 and sorted(set(batch.tolist())) == [0, 1, 2]
    assert np.array_equal(order(0), EpochOrder(3, 8, seed=1, shuffle=True, repeat=True)(0))  # a function of (seed, step)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        EpochOrder(3, 8, seed=1, shuffle=True)  # without repeat, as before


def test_pairs_from_globs_and_languages_from_suffixes(tmp_path):
    for lang in ("deu", "fra"):
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "en").mkdir(exist_ok=True)
        (tmp_path / "x" / f"{lang}-eng.{lang}").write_text("a\n")
        (tmp_path / "en" / f"{lang}-eng.eng").write_text("b\n")
    pairs = pair_files([str(tmp_path / "x" / "*"), str(tmp_path / "en" / "*")])
    assert [(Path(a).name, Path(b).name) for a, b in pairs] == [("deu-eng.deu", "deu-eng.eng"), ("fra-eng.fra", "fra-eng.eng")]
    assert file_langs(["train.de-en.de", "train.de-en.en"]) == ["de", "en"]
    assert file_langs(["a.txt", "b.txt"]) == ["lang0", "lang1"]  # suffixes that do not tell files apart
    with pytest.raises(ValueError, match="pairwise"):
        pair_files([str(tmp_path / "x" / "deu-eng.deu")])
    with pytest.raises(FileNotFoundError, match="matches no file"):
        pair_files([str(tmp_path / "nothing" / "*"), str(tmp_path / "en" / "*")])


@pytest.fixture()
def recipe(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    for lang, n in (("aaa", 400), ("bbb", 30), ("eng", 400)):
        lines = [" ".join(f"w{i}" for i in rng.integers(0, 40, 6)) for _ in range(n)]
        (tmp_path / "mono").mkdir(exist_ok=True)
        (tmp_path / "mono" / f"train.{lang}").write_text("\n".join(lines) + "\n")
    for lang, n in (("aaa", 400), ("bbb", 30)):
        for side, folder in ((lang, "x"), ("eng", "en")):
            (tmp_path / folder).mkdir(exist_ok=True)
            lines = [" ".join(f"w{i}" for i in rng.integers(0, 40, 5)) for _ in range(n)]
            (tmp_path / folder / f"{lang}-eng.{side}").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_mlm_and_tlm_alternate_and_pairs_are_sampled_with_smoothing(recipe):
    model_cfg = ModelConfig.from_preset("xlm-roberta-base").replace(vocab_size=len(WORDS), mask_index=len(WORDS) - 1,
                                                                   n_layers=1, dim=8, n_heads=2, ffn_dim=16)
    cfg = TrainConfig(model="x", objective="mlm+tlm", tokenizer=str(recipe / "vocab.txt"), batch_size=8, seq_len=16,
                      train=(str(recipe / "mono" / "*"),), parallel=(str(recipe / "x" / "*"), str(recipe / "en" / "*")),
                      lang_alpha=0.5)
    source = build_source(cfg, model_cfg, recipe / "out", D.Dist(), seed=0)
    assert "positions" not in source.batch(0) and "positions" in source.batch(1)  # even MLM, odd TLM
    tlm = source.sources[1]
    drawn = [tlm.sampler.sample(step)[0] for step in range(1, 4000, 2)]
    expected = language_sampling_probs({"aaa-eng": 400, "bbb-eng": 30}, 0.5)["bbb-eng"]  # (30/430)^.5 normalised
    assert abs(drawn.count("bbb-eng") / len(drawn) - expected) < 0.03
    assert source.sources[0].batch(0)["input_ids"].shape == (8, 16)


def test_pretrain_cli_runs_the_recipe(recipe, tmp_path):
    tiny_model(vocab_size=len(WORDS), mask_index=len(WORDS) - 1, dim=8, ffn_dim=16).save_pretrained(recipe / "tiny")
    args = ["pretrain", "--model", str(recipe / "tiny"), "--tokenizer", str(recipe / "vocab.txt"),
            "--objective", "mlm+tlm", "--train", str(recipe / "mono" / "*"), "--parallel", str(recipe / "x" / "*"),
            str(recipe / "en" / "*"), "--steps", "4", "--batch-size", "4", "--seq-len", "16", "--no-progress",
            "--log-every", "1", "--out", str(tmp_path / "run")]
    assert cli.main(args) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
