"""Peak memory and wall time of loading an xlm-roberta-large-sized checkpoint: xlmlib vs transformers.

Creates a random XLMRobertaForMaskedLM with the xlm-roberta-large shape (H1024 L24 V250002, fp32,
about 2.2 GB) through transformers' own class and save_pretrained, in a temporary folder. Then each
loader runs in a fresh subprocess, alternating, `--repeats` times; each child reports
- load_s: wall time of from_pretrained alone (imports excluded),
- peak_rss: VmHWM after loading and reading every parameter once (so lazily mapped pages count),
- base_rss: RSS after the imports, before loading.
Prints a Markdown table of medians with ratios against the weights' bytes and against transformers.
Usage: python scripts/bench_load.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
which, folder = sys.argv[1], sys.argv[2]
if which == "xlmlib":
    import xlmlib
    load = lambda: xlmlib.MaskedLM.from_pretrained(folder)
else:
    import transformers
    load = lambda: transformers.XLMRobertaForMaskedLM.from_pretrained(folder)
base = rss("VmRSS:")
t = time.perf_counter()
model = load()
load_s = time.perf_counter() - t
with torch.no_grad():
    total = sum(float(p.float().sum()) for p in model.parameters())  # touch every weight page
ready_s = time.perf_counter() - t  # load + first read of every weight: usable-model time
print(json.dumps({"load_s": load_s, "ready_s": ready_s, "peak_rss": rss("VmHWM:"), "base_rss": base, "check": total}))
"""


def make_checkpoint(folder: Path) -> int:
    import torch
    import transformers

    cfg = transformers.XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                        num_attention_heads=16, intermediate_size=4096, max_position_embeddings=514,
                                        type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1)
    torch.manual_seed(0)
    model = transformers.XLMRobertaForMaskedLM(cfg)
    model.save_pretrained(folder)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def run(which: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(folder)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="reuse/keep the checkpoint in this folder")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    folder = args.keep or Path(tmp.name)
    if not (folder / "model.safetensors").is_file():
        make_checkpoint(folder)
    weights = (folder / "model.safetensors").stat().st_size
    results = {"xlmlib": [], "transformers": []}
    for _ in range(args.repeats):
        for which, runs in results.items():  # alternate so both see the same page-cache state
            runs.append(run(which, folder))
    med = {w: {k: statistics.median(r[k] for r in rs) for k in ("load_s", "ready_s", "peak_rss", "base_rss")}
           for w, rs in results.items()}
    gb = 1e9
    print(f"weights: {weights / gb:.2f} GB (model.safetensors, fp32); medians of {args.repeats} runs\n")
    print("| loader | from_pretrained (s) | + first read of every weight (s) | ready time vs transformers | "
          "peak RSS (GB) | peak / weights | (peak - import baseline) / weights |")
    print("|---|---|---|---|---|---|---|")
    for which, m in med.items():
        print(f"| {which} | {m['load_s']:.2f} | {m['ready_s']:.2f} | {m['ready_s'] / med['transformers']['ready_s']:.2f}x | "
              f"{m['peak_rss'] / gb:.2f} | {m['peak_rss'] / weights:.2f}x | "
              f"{(m['peak_rss'] - m['base_rss']) / weights:.2f}x |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
