"""`python scripts/bench.py gpu` as a user runs it: --smoke exercises all nine cases on CPU with a tiny
model (its numbers mean nothing, so only their form and internal consistency are checked), and without
--smoke a machine with no CUDA GPU gets a clear refusal. Speed itself is never asserted here."""

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench.py"


def run_bench(*args, cuda_visible: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    return subprocess.run([sys.executable, str(BENCH), "gpu", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False, timeout=300)


def number(cell: str) -> float:
    return float(cell.strip().rstrip("x%").replace(",", ""))


def test_smoke_run_prints_all_cases_consistently(tmp_path):
    out = tmp_path / "gpu.md"
    done = run_bench("--smoke", "--repeats", "1", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    table = [ln for ln in out.read_text(encoding="utf-8").splitlines() if re.match(r"\| \d\. ", ln)]
    assert [int(ln[2]) for ln in table] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert table == [ln for ln in done.stdout.splitlines() if re.match(r"\| \d\. ", ln)]
    for line in table:
        cells = line.strip("|").split("|")
        ours, theirs, ratio, mfu = (number(c) for c in cells[1:5])
        assert min(ours, theirs, ratio, mfu) > 0, line
        # ratio is transformers' time / ours, so it must equal the printed rates' quotient (ratio has 2 decimals)
        assert ratio == pytest.approx(ours / theirs, abs=0.006), line
    rows = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["rows"]
    for row in rows:
        ours_ms, theirs_ms = (statistics.median(row[k]) for k in ("ours_ms", "transformers_ms"))
        assert row["ratio"] == pytest.approx(theirs_ms / ours_ms)
    assert "% of case 1" in table[1] and "% of case 3" in table[3] and "% of case 5" in table[5]


def test_refuses_without_cuda(tmp_path):
    done = run_bench("--repeats", "1", "--out", tmp_path / "gpu.md", cuda_visible="")
    assert done.returncode != 0
    assert "bench.py gpu needs a CUDA GPU; torch.cuda.is_available() is False" in done.stderr
    assert not (tmp_path / "gpu.md").exists()


def test_a_failing_case_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """A device session has minutes: one case that fails (here a simulated out-of-memory in case 2) is
    written into the table with its error, the later cases still run, and the exit status says so."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import bench
    import bench_gpu

    real = bench_gpu.run_case

    def run_case(case, *args):
        if case.number == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(case, *args)

    monkeypatch.setattr(bench_gpu, "run_case", run_case)
    out = tmp_path / "gpu.md"
    assert bench.main(["gpu", "--smoke", "--repeats", "1", "--warmup", "1", "--cases", "1,2,3", "--out", str(out)]) == 1
    table = [ln for ln in out.read_text(encoding="utf-8").splitlines() if re.match(r"\| \d\. ", ln)]
    assert [int(ln[2]) for ln in table] == [1, 3, 2]
    assert "failed: RuntimeError('CUDA out of memory (simulated)')" in table[2]
    assert "CUDA out of memory (simulated)" in capsys.readouterr().err  # the traceback, for the log
