"""DDP/FSDP under torchrun on CPU (gloo): two processes sharing a global batch follow the one-process
loss curve. Expected values come from the one-process run of the same command (our own code)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlmlib.cli import main
from xlmlib.train.metrics import read_metrics

from .synthetic import pattern_lines, save_tiny, write_lines

ROOT = Path(__file__).resolve().parents[2]


def _args(tmp, out, sharding):
    return ["pretrain", "--model", str(tmp / "tiny"), "--objective", "mlm", "--train", str(tmp / "en.txt"),
            "--langs", "en", "--steps", "6", "--batch-size", "8", "--seq-len", "32", "--lr", "2e-3",
            "--out", str(out), "--tokenizer", str(tmp / "tiny" / "vocab.txt"), "--no-progress",
            "--sharding", sharding, "--grad-accum", "2"]


def _torchrun(argv, tmp):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "xlmlib.cli", *argv]
    done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _one_and_two_processes(argv_for, tmp, label: str) -> tuple[list[float], list[float], float]:
    """The same command in one process and under torchrun with two: both loss curves and their max gap."""
    assert main(argv_for(tmp / "one")) == 0
    _torchrun(argv_for(tmp / "two"), tmp)
    one = [r["loss"] for r in read_metrics(tmp / "one" / "metrics.jsonl")]
    two = [r["loss"] for r in read_metrics(tmp / "two" / "metrics.jsonl")]
    assert len(one) == len(two) == 6
    worst = max(abs(a - b) for a, b in zip(one, two))
    print(f"{label}: max |loss(1 process) - loss(2 processes)| over 6 steps = {worst:.2e}")
    return one, two, worst


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one_process(tmp_path, sharding):
    # dropout 0: each process draws its own dropout masks, which one process would draw differently.
    save_tiny(tmp_path / "tiny", dropout=0.0)
    write_lines(tmp_path / "en.txt", pattern_lines(200, seed=3))
    one, two, worst = _one_and_two_processes(lambda out: _args(tmp_path, out, sharding), tmp_path, sharding)
    assert worst < 1e-5, (one, two)
    assert one[-1] < one[0]


@pytest.mark.slow
def test_bf16_weights_under_ddp_follow_one_process(tmp_path):
    """precision bf16-weights under DDP: the bf16 gradients are all-reduced in bf16 (gloo), so the curves
    agree within bf16 noise rather than to 1e-5."""
    save_tiny(tmp_path / "tiny", dropout=0.0)
    write_lines(tmp_path / "en.txt", pattern_lines(200, seed=3))
    bf16 = ["--precision", "bf16-weights"]
    one, two, worst = _one_and_two_processes(lambda out: _args(tmp_path, out, "ddp") + bf16, tmp_path,
                                             "bf16-weights ddp")
    # Measured 3.6e-4 and 3.7e-4 in two runs of this test (torch 2.13 CPU, gloo, 2026-11-28), about one
    # process's bf16 autocast vs bf16-weights difference on the same run; the tolerance is 3x that.
    assert worst < 1.1e-3, (one, two)
    assert one[-1] < one[0]


@pytest.mark.slow
def test_train_mt_two_gloo_processes_match_one_process(tmp_path):
    """mt, ae and bt steps (bt generates inside the DDP forward) follow the one-process losses."""
    import xlmlib

    from .synthetic import random_pairs

    save_tiny(tmp_path / "tiny", xlmlib.Translator)
    pairs = random_pairs(64, seed=4)
    write_lines(tmp_path / "en.txt", [a for a, _ in pairs])
    write_lines(tmp_path / "fr.txt", [b for _, b in pairs])

    def args(out):
        files = [str(tmp_path / "en.txt"), str(tmp_path / "fr.txt")]
        return ["train-mt", "--model", str(tmp_path / "tiny"), "--langs", "en,fr", "--parallel", *files,
                "--mono", *files, "--mt-steps", "en-fr", "--ae-steps", "en", "--bt-steps", "fr-en-fr",
                "--steps", "6", "--batch-size", "8", "--grad-accum", "2", "--lr", "2e-3", "--out", str(out),
                "--no-progress", "--precision", "fp32"]

    one, two, worst = _one_and_two_processes(args, tmp_path, "train-mt ddp")
    assert worst < 1e-5, (one, two)
