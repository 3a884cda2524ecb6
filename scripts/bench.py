"""Benchmarks, side by side with transformers in the same run (same weights and inputs, alternating calls,
medians). With no subcommand every case runs and a Markdown table plus JSON (with machine information)
land in bench-results/. Each case's logic lives in its own module (scripts/bench_<case>.py).

    python scripts/bench.py                      # everything: model cases, tokenizers, checkpoint loading
    python scripts/bench.py model [--cases dense,xlm,mlm-step,precision] [--repeats 5]
    python scripts/bench.py tokenizers [--sentences 24000] [--repeats 5] [--out bench-results/tokenizers.md]
    python scripts/bench.py load [--repeats 3]
    python scripts/bench.py qa [--shape small|base] [--questions 100] [--repeats 3]   # not part of the default run
    python scripts/bench.py mining [--n 10000] [--dims 192,768] [--memory-n 100000]  # minutes: not in the default run
    python scripts/bench.py gpu [--cases 1,2,...,7] [--repeats 10] [--warmup 3] [--peak-tflops F] [--sync-check]
                                [--out bench-results/gpu.md] [--smoke]   # not part of the default run
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULTS = HERE.parent / "bench-results"


def machine() -> dict:
    import torch
    import transformers

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    return {"date": datetime.date.today().isoformat(), "cpu": model, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def _model(args: argparse.Namespace) -> int:
    import bench_model
    import torch
    import transformers

    gemm = bench_model.matmul_gflops(args.repeats)
    rows = []
    for name in args.cases.split(","):
        case = bench_model.CASES[name]
        rows += case(transformers, args.repeats, gemm) if name == "dense" else case(transformers, args.repeats)
        print(f"done: {name}", file=sys.stderr)
    info = machine() | {"fp32_gemm_gflops": round(gemm, 1), "gpu": torch.cuda.is_available()}
    lines = [(f"Measured {info['date']} on {info['cpu']} ({info['threads']} threads), torch {info['torch']}, "
              f"transformers {info['transformers']}; measured fp32 GEMM peak {gemm:.0f} GFLOP/s."), "",
             "| case | xlmlib | reference | unit | ratio | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['ours']:,.1f} | {r['transformers']:,.1f} | {r['unit']} | {r['ratio']:.2f}x | "
              f"{r['note']} |" for r in rows]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "model.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "model.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _tokenizers(args: argparse.Namespace) -> int:
    import bench_tokenizers

    return bench_tokenizers.main(args)


def _load(args: argparse.Namespace) -> int:
    out = subprocess.run([sys.executable, str(HERE / "bench_load.py"), "--repeats", str(args.repeats)],
                         capture_output=True, text=True, check=True).stdout
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.md").write_text(out, encoding="utf-8")
    print(out)
    return 0


def _gpu(args: argparse.Namespace) -> int:
    import bench_gpu

    return bench_gpu.main(args, machine())


def _qa(args: argparse.Namespace) -> int:
    import bench_qa

    return bench_qa.main(args, machine())


def _all(args: argparse.Namespace) -> int:
    parser = build_parser()
    for argv in (["model"], ["tokenizers"], ["load"]):
        sub = parser.parse_args(argv)
        sub.handler(sub)
    parts = [(RESULTS / f"{name}.md").read_text(encoding="utf-8") for name in ("model", "tokenizers", "load")]
    (RESULTS / "bench.md").write_text("\n\n".join(parts), encoding="utf-8")
    (RESULTS / "bench.json").write_text(json.dumps({"machine": machine(), "model": json.loads(
        (RESULTS / "model.json").read_text())["rows"]}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'bench.md'} and {RESULTS / 'bench.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=_all)
    sub = parser.add_subparsers(dest="case")
    model = sub.add_parser("model", help="XLM-R / XLM forward, MLM training step, int8/bf16 (vs transformers)")
    model.add_argument("--cases", default="dense,xlm,mlm-step,precision")
    model.add_argument("--repeats", type=int, default=5)
    model.set_defaults(handler=_model)
    tok = sub.add_parser("tokenizers", help="XLM and XLM-R tokenizers vs transformers (sentences/s)")
    tok.add_argument("--assets", type=Path, default=None, help="shared assets folder (default ../shared/assets)")
    tok.add_argument("--sentences", type=int, default=24000, help="Tatoeba sentences per case (>= 20000)")
    tok.add_argument("--repeats", type=int, default=5, help="timed runs per tokenizer (median reported)")
    tok.add_argument("--batch-size", type=int, default=64)
    tok.add_argument("--out", type=Path, default=RESULTS / "tokenizers.md", help="Markdown table written here")
    tok.set_defaults(handler=_tokenizers)
    load = sub.add_parser("load", help="peak RSS and time of loading an xlm-roberta-large-sized checkpoint")
    load.add_argument("--repeats", type=int, default=3)
    load.set_defaults(handler=_load)
    gpu = sub.add_parser("gpu", help="XLM-R base/large inference and MLM training steps on one CUDA GPU, with MFU")
    gpu.add_argument("--cases", default="1,2,3,4,5,6,7,8,9", help="comma list of case numbers (see bench_gpu.py)")
    gpu.add_argument("--repeats", type=int, default=10, help="timed calls per library (median reported)")
    gpu.add_argument("--warmup", type=int, default=3, help="untimed calls per library first")
    gpu.add_argument("--peak-tflops", type=float, default=None,
                     help="dense bf16 peak for MFU (default: 989 on an H100/H200 SXM; required on other GPUs)")
    gpu.add_argument("--out", type=Path, default=RESULTS / "gpu.md", help="Markdown table; the JSON lands beside it")
    gpu.add_argument("--smoke", action="store_true",
                     help="run every case on CPU with a tiny model to check the code paths (numbers mean nothing)")
    gpu.add_argument("--sync-check", action="store_true",
                     help="also count host synchronisations in one case-5 training step of xlmlib (CUDA only)")
    gpu.set_defaults(handler=_gpu)
    import bench_qa

    qa = sub.add_parser("qa", help="extractive QA: answers/s for 100 questions over long contexts (vs transformers)")
    bench_qa.add_arguments(qa).set_defaults(handler=_qa)
    import bench_mining

    mining = sub.add_parser("mining", help="margin mining pairs/s at 10k x 10k, peak memory at 100k x 100k (CPU)")
    bench_mining.add_arguments(mining)
    mining.set_defaults(handler=bench_mining.main)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
