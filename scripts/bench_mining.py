"""`bench.py mining`: speed and memory of margin mining (xlmlib.evaluation.mining.mine) on the CPU.

    python scripts/bench_mining.py [--n 10000] [--dims 192,768] [--memory-n 100000] [--block-size 4096]
                                   [--repeats 3] [--out bench-results/mining.md]

1. Speed: mine() over n x n random unit vectors, margin "ratio", k = 4 (two passes over the tiles: the k nearest
   neighbours both ways, then the scores), for each width d (192: the shipped xlmlib-mini; 768: XLM-R base).
   pairs/s = n * n / seconds, median of --repeats runs after one warm-up.
2. Memory: in a fresh process per d, mine() over --memory-n x --memory-n random unit vectors (the issue's
   100k x 100k; about 2 x 7.7e12 multiply-adds at d = 768, so minutes; --memory-n 0 skips it). The vectors are
   made in chunks, so that making them leaves no high-water mark of its own; then, around mine() alone:
   - hwm: the kernel's peak resident set (VmHWM, /proc/self/status) after mine() minus VmRSS before it,
   - sampled: the largest VmRSS seen by a thread reading it every 10 ms, minus VmRSS before it.
   Both count everything mine() allocates (tiles, temporaries, kept neighbours, the result list), not the
   vectors themselves, which are resident before. tracemalloc is not used: it does not see torch's allocations.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"

CHILD = r"""
import json, sys, threading, time, torch
sys.path.insert(0, sys.argv[4])
from xlmlib.evaluation.mining import mine

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

n, d, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
g = torch.Generator().manual_seed(0)
a, b = torch.empty(n, d), torch.empty(n, d)
for v in (a, b):
    for i in range(0, n, 4096):  # in chunks: no full-size temporary
        chunk = torch.randn(min(4096, n - i), d, generator=g)
        v[i:i + len(chunk)] = torch.nn.functional.normalize(chunk, dim=-1)
base, hwm_before = status("VmRSS:"), status("VmHWM:")
peak, done = [base], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], status("VmRSS:"))
        time.sleep(0.01)

thread = threading.Thread(target=sample, daemon=True)
thread.start()
t = time.perf_counter()
pairs = mine(None, None, a, b, block_size=block, progress=False)
seconds = time.perf_counter() - t
done.set()
thread.join()
print(json.dumps({"n": n, "d": d, "block_size": block, "seconds": seconds, "vectors_bytes": 2 * n * d * 4,
                  "base_rss": base, "hwm_before": hwm_before, "hwm_delta": status("VmHWM:") - base,
                  "sampled_delta": peak[0] - base, "pairs": len(pairs)}))
"""


def speed(n: int, d: int, block_size: int, repeats: int) -> dict:
    import torch

    from xlmlib.evaluation.mining import mine

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        t = time.perf_counter()
        mine(None, None, a, b, block_size=block_size, progress=False)
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times[1:])
    return {"n": n, "d": d, "block_size": block_size, "seconds": seconds, "pairs_per_s": n * n / seconds}


def memory(n: int, d: int, block_size: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(d), str(block_size), str(ROOT)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the memory case n={n} d={d} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mib(x: int) -> str:
    return f"{x / 2**20:,.0f} MiB"


def report(rows_speed: list[dict], rows_memory: list[dict], threads: int) -> str:
    lines = [(f"Measured {datetime.date.today().isoformat()} with `python scripts/bench_mining.py`, {threads} torch "
              f"threads, {os.cpu_count()} CPUs; margin ratio, k = 4, random unit vectors."), "",
             "| n x n | d | block | seconds | pairs/s |", "|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} x {r['n']:,} | {r['d']} | {r['block_size']} | {r['seconds']:.2f} | "
              f"{r['pairs_per_s'] / 1e6:.1f} M |" for r in rows_speed]
    if rows_memory:
        lines += ["", "| n x n | d | block | seconds | vectors | peak beyond the vectors (VmHWM) | (sampled VmRSS) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} x {r['n']:,} | {r['d']} | {r['block_size']} | {r['seconds']:.0f} | "
                  f"{_mib(r['vectors_bytes'])} | {_mib(r['hwm_delta'])} | {_mib(r['sampled_delta'])} |"
                  for r in rows_memory]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=10000, help="sentences per side for the speed case")
    parser.add_argument("--dims", default="192,768", help="vector widths (192: xlmlib-mini, 768: XLM-R base)")
    parser.add_argument("--memory-n", type=int, default=100000, help="sentences per side for memory (0: skip)")
    parser.add_argument("--block-size", type=int, default=None, help="tile size (default: mining.BLOCK_SIZE)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "mining.md", help="Markdown; the JSON lands beside it")


def main(args) -> int:
    sys.path.insert(0, str(ROOT))
    import torch

    from xlmlib.evaluation.mining import BLOCK_SIZE

    block = args.block_size or BLOCK_SIZE
    dims = [int(d) for d in args.dims.split(",")]
    rows_speed = [speed(args.n, d, block, args.repeats) for d in dims]
    rows_memory = [memory(args.memory_n, d, block) for d in dims] if args.memory_n else []
    text = report(rows_speed, rows_memory, torch.get_num_threads())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"speed": rows_speed, "memory": rows_memory}, indent=1) + "\n",
                                             encoding="utf-8")
    print(text + f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    raise SystemExit(main(parser.parse_args()))
