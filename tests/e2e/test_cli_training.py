"""The training-side verbs as a user runs them (subprocesses), on a tiny model with the real XLM-R
SentencePiece vocabulary and real Tatoeba / PAWS-X lines: preprocess, pretrain (MLM and TLM, then resume),
convert, finetune, and fill-mask on the pretrained result."""

import json
import math
from pathlib import Path

import pytest
import torch

import xlmlib

from ..folders import run_xlmlib as run
from ..folders import save_tiny_xlmr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, assets):
    work = tmp_path_factory.mktemp("cli-training")
    save_tiny_xlmr(work / "tiny", assets)
    tatoeba = assets / "tatoeba-laser-v1"
    for lang, name in (("en", "tatoeba.fra-eng.eng"), ("fr", "tatoeba.fra-eng.fra")):
        lines = (tatoeba / name).read_text(encoding="utf-8").splitlines()[:300]
        (work / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return work


def losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r and "step" in r]


def test_preprocess_pretrain_resume_convert(workdir):
    run("preprocess", "--tokenizer", "tiny", "--out", "data", "en.txt", "fr.txt", cwd=workdir)
    assert (workdir / "data" / "en.json").is_file()
    common = ["--model", "tiny", "--tokenizer", "tiny", "--batch-size", "4", "--seq-len", "32", "--lr", "1e-3",
              "--no-progress", "--log-every", "1"]
    run("pretrain", *common, "--objective", "mlm", "--train", "en.txt", "fr.txt", "--langs", "en,fr",
        "--steps", "4", "--out", "mlm", cwd=workdir)
    full = losses(workdir / "mlm")
    assert len(full) >= 4 and all(math.isfinite(v) for v in full)
    run("pretrain", *common, "--objective", "mlm", "--train", "en.txt", "fr.txt", "--langs", "en,fr",
        "--steps", "2", "--out", "resumed", cwd=workdir)
    run("pretrain", *common, "--objective", "mlm", "--train", "en.txt", "fr.txt", "--langs", "en,fr",
        "--steps", "4", "--out", "resumed", "--resume", cwd=workdir)
    assert losses(workdir / "resumed")[-2:] == pytest.approx(full[-2:], abs=1e-6)
    run("pretrain", *common, "--objective", "tlm", "--parallel", "en.txt", "fr.txt", "--langs", "en,fr",
        "--steps", "2", "--out", "tlm", cwd=workdir)
    assert losses(workdir / "tlm")
    out = run("convert", "tiny", "tiny-hf", "--to", "hf", cwd=workdir)
    assert "max |difference|" in out and (workdir / "tiny-hf" / "sentencepiece.bpe.model").is_file()
    filled = run("fill-mask", "--model", "tiny-hf", "Paris is the <mask> of France.", cwd=workdir)
    assert "Paris is the " in filled


def test_finetune_on_pawsx_lines(workdir, assets):
    rows = (assets / "pawsx-de" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (workdir / "train.tsv").write_text("\n".join(rows[:121]) + "\n", encoding="utf-8")  # header + 120 pairs
    (workdir / "dev.tsv").write_text("\n".join([rows[0], *rows[121:161]]) + "\n", encoding="utf-8")
    out = run("finetune", "--config", ROOT / "configs" / "tasks" / "pawsx.toml", "--model", "tiny",
              "--tokenizer", "tiny", "--train", "train.tsv", "--dev", "dev.tsv", "--steps", "4",
              "--batch-size", "8", "--eval-every", "2", "--out", "pawsx", "--no-progress", cwd=workdir)
    assert "accuracy" in out
    assert (workdir / "pawsx" / "results.json").is_file()


def test_whole_word_masking_runs_for_mlm_and_tlm(workdir):
    common = ["--model", "tiny", "--tokenizer", "tiny", "--batch-size", "4", "--seq-len", "32", "--lr", "1e-3",
              "--no-progress", "--log-every", "1", "--steps", "2", "--whole-word"]
    run("pretrain", *common, "--objective", "mlm", "--train", "en.txt", "--langs", "en", "--out", "ww-mlm",
        cwd=workdir)
    run("pretrain", *common, "--objective", "tlm", "--parallel", "en.txt", "fr.txt", "--langs", "en,fr",
        "--out", "ww-tlm", cwd=workdir)
    assert losses(workdir / "ww-mlm") and losses(workdir / "ww-tlm")


def test_whole_word_sources_mask_words_as_units(workdir):
    """Every word of a whole-word MLM batch is either wholly chosen for prediction or not at all."""
    from xlmlib.train.data import MemmapCorpus
    from xlmlib.train.sources import StreamSource

    tok = xlmlib.Tokenizer.from_pretrained(workdir / "tiny")
    cfg = xlmlib.ModelConfig.from_preset("xlm-roberta-base")
    run("preprocess", "--tokenizer", "tiny", "--out", "ww-data", "en.txt", cwd=workdir)
    source = StreamSource({"en": MemmapCorpus(str(workdir / "ww-data" / "en"))}, cfg, objective="mlm",
                          batch_size=4, seq_len=64, mlm_probability=0.3, word_ids=tok.word_ids_from_ids)
    for step in range(3):
        batch = source.batch(step)
        original = torch.where(batch["labels"] >= 0, batch["labels"], batch["input_ids"])
        words = tok.word_ids_from_ids(original)
        chosen = batch["labels"] >= 0
        for row in range(words.shape[0]):
            for w in set(words[row].tolist()) - {-1}:
                in_word = chosen[row][words[row] == w]
                assert in_word.all() or not in_word.any()
