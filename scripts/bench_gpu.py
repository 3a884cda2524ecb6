"""GPU benchmark against transformers (`python scripts/bench.py gpu`): XLM-R base and large inference and MLM
training steps on one CUDA GPU, by bench_model.py's method: transformers' twin with random weights, ours loaded
from its save_pretrained folder by the production loader, the same inputs, alternating calls, medians over
--repeats after --warmup calls of each.

Timing: one CUDA event pair around each call. torch.cuda.synchronize() runs before the start event and after
the end event, never between them, so a call's time includes its own host-side gaps (launch overhead, host
synchronisations) as a user sees them, and no queued work of the other library.

The cases, their inputs and the two libraries' calls are in bench_gpu_cases.py; this file times them and
writes the table.

MFU = useful FLOPs / median time / peak. One FLOP count per case serves both columns (so MFU and ratio agree):
    inference  2 N tokens + 4 L D sum(len^2)
    training   6 N tokens + 12 L D sum(len^2) + 6 M (D^2 + D V)
N: encoder non-embedding parameters (the layers), L layers, D width, V vocabulary, len: each row's own real
length, tokens = sum(len), M: masked (predicted) positions. Padding is never useful work, and the LM head
counts the masked rows only, whether a library projects just those (xlmlib) or every row (transformers).

--smoke runs every case on CPU with bench_model.XLMR_SIZES["tiny"] (2 layers, width 64, vocabulary 1000),
2 rows, lengths up to 32, fp32 inference, CPU bf16 autocast for training, perf_counter timing, and
torch.compile(backend="eager"): dynamo's graph capture without inductor's code generation, which on CPU needs
a C++ toolchain and minutes. It checks the code paths; its numbers mean nothing.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch
from bench_gpu_cases import CASES, Case, Setting, prepare

NO_CUDA = "bench.py gpu needs a CUDA GPU; torch.cuda.is_available() is False"
# Dense (no sparsity) bf16 tensor-core TFLOP/s from NVIDIA's spec sheets; the first fragment found in
# torch.cuda.get_device_name() wins, so the PCIe/NVL variants come before the SXM parts.
SPEC_PEAKS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100", 989.0), ("H200", 989.0))


def cudagraph_skips() -> int:
    """How often inductor fell back from CUDA graphs so far (its counter; the reasons are in its log)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"].get("cudagraph_skips", 0))


def clock(fn, cuda: bool) -> float:
    """Seconds of one call: CUDA events with the GPU idle at the start, or perf_counter on CPU."""
    if not cuda:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3


def alternate(ours, theirs, setting: Setting) -> tuple[list[float], list[float]]:
    """Seconds per call of each, alternating, after `warmup` untimed calls of each (compilation, autotuning,
    allocator growth, AdamW state creation)."""
    for _ in range(setting.warmup):
        ours(), theirs()
    cuda = setting.device.type == "cuda"
    a, b = [], []
    for _ in range(setting.repeats):
        a.append(clock(ours, cuda))
        b.append(clock(theirs, cuda))
    return a, b


def run_case(case: Case, setting: Setting, transformers, peak: float) -> dict:
    skips = cudagraph_skips()
    with tempfile.TemporaryDirectory() as folder:
        prep = prepare(case, setting, transformers, folder)
        a, b = alternate(prep.ours, prep.theirs, setting)
    ours_s, theirs_s = statistics.median(a), statistics.median(b)
    return {"number": case.number, "case": f"{case.number}. {case.title}", "ours": prep.tokens / ours_s,
            "cudagraph_skips": cudagraph_skips() - skips,
            "transformers": prep.tokens / theirs_s, "ratio": theirs_s / ours_s,
            "mfu": prep.flops / ours_s / (peak * 1e12), "ours_ms": [1e3 * t for t in a],
            "transformers_ms": [1e3 * t for t in b], "tokens": prep.tokens, "batch": list(prep.batch),
            "useful_flops": prep.flops}


def free_device(cuda: bool) -> None:
    """Release one case's models before the next builds its own (large twins in fp32 with AdamW state)."""
    gc.collect()
    torch._dynamo.reset()
    if cuda:
        torch.cuda.empty_cache()


def sync_check(setting: Setting, transformers) -> dict:
    """One case-5 training step of ours under torch.cuda.set_sync_debug_mode("warn"). Each warning is a host
    synchronisation (nonzero, .item(), .tolist(), a blocking copy) that drains the launch queue; counted by
    the Python line that triggered it."""
    with tempfile.TemporaryDirectory() as folder:
        prep = prepare(CASES[4], setting, transformers, folder)
        prep.ours()  # first-call allocations and lazy initialisation are not the steady state
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                prep.ours()
            finally:
                torch.cuda.set_sync_debug_mode("default")
    sites = Counter(f"{w.filename}:{w.lineno}" for w in caught)
    return {"syncs_per_step": len(caught), "sites": dict(sites.most_common())}


def peak_tflops(args, gpu: str) -> tuple[float | None, str]:
    """(peak TFLOP/s, where it came from); None when the GPU is unknown and no --peak-tflops was given."""
    if args.peak_tflops:
        return args.peak_tflops, "--peak-tflops"
    if args.smoke:
        return 1.0, "nominal, CPU smoke run: MFU meaningless"
    for fragment, tflops in SPEC_PEAKS:
        if fragment in gpu:
            return tflops, f"dense bf16 spec-sheet figure for the {fragment}"
    return None, ""


def dense_equivalent(row: dict, rows: dict) -> str:
    """A variable-length case's real tokens/s as a % of its dense twin's tokens/s (the issue's goal: >= 95%)."""
    case = CASES[row["number"] - 1]
    dense = rows.get(case.dense_twin)
    if dense is None:
        return "-"
    ours, theirs = 100 * row["ours"] / dense["ours"], 100 * row["transformers"] / dense["transformers"]
    return f"{ours:.0f}% / {theirs:.0f}% of case {dense['number']}"


def uses_graphs(case: Case) -> bool:
    return case.compiled and (case.graphs or not case.train)  # compiled inference is always CUDA graphs


def render(rows: list[dict], info: dict) -> list[str]:
    timing = "perf_counter on CPU" if info["smoke"] else "CUDA events"
    lines = [(f"Measured {info['date']} on {info['gpu']}, torch {info['torch']} (CUDA {info['cuda'] or 'none'}), "
              f"transformers {info['transformers']}; medians of {info['repeats']} alternating calls after "
              f"{info['warmup']} warm-up calls each, {timing}. MFU against a peak of {info['peak_tflops']:g} "
              f"TFLOP/s ({info['peak_source']})."), ""]
    if info["smoke"]:
        lines += ["SMOKE RUN: tiny model on CPU (see scripts/bench_gpu.py); the numbers mean nothing.", ""]
    lines += ["| case | xlmlib | transformers | ratio | xlmlib MFU | dense-equivalent (xlmlib / transformers) |",
              "|---|---|---|---|---|---|"]
    by_number = {r["number"]: r for r in rows}
    lines += [f"| {r['case']} | {r['ours']:,.1f} | {r['transformers']:,.1f} | {r['ratio']:.2f}x | "
              f"{100 * r['mfu']:.1f}% | {dense_equivalent(r, by_number)} |" for r in rows]
    lines += [f"| {f['case']} | failed: {f['error'][:120]} | | | | |" for f in info.get("failed", [])]
    if not info["smoke"]:
        lines += [f"\nCase {r['number']}: inductor fell back from CUDA graphs {r['cudagraph_skips']} times for "
                  "the two models (0: every call replayed a graph; the reasons are in its log)."
                  for r in rows if uses_graphs(CASES[r["number"] - 1])]
    lines += ["", ("ratio = transformers' median time / ours. Dense-equivalent: a variable-length case's real "
              "tokens/s as a % of its dense twin's tokens/s (goal >= 95%); the twins' row lengths differ, so "
              "attention's share of the work does too (MFU counts it).")]
    return lines


def render_sync(check: dict) -> list[str]:
    lines = ["", (f"Sync check (case 5, xlmlib, one training step): {check['syncs_per_step']} host "
             "synchronisations per step.")]
    return lines + [f"- {count}x {site}" for site, count in check["sites"].items()]


def selected_cases(text: str) -> list[Case]:
    wanted = [int(part) for part in text.split(",") if part.strip()]
    unknown = [n for n in wanted if not 1 <= n <= len(CASES)]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; the cases are 1..{len(CASES)}")
    return [CASES[n - 1] for n in wanted]


def write(out: Path, lines: list[str], payload: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def main(args, machine: dict) -> int:
    """bench.py's `gpu` subcommand: run the cases, print the table, write args.out and its .json twin."""
    if not args.smoke and not torch.cuda.is_available():
        print(f"{NO_CUDA} (--smoke runs every case on CPU with a tiny model)", file=sys.stderr)
        return 2
    import transformers

    cases, setting = selected_cases(args.cases), Setting.from_args(args)
    cuda = setting.device.type == "cuda"
    gpu = torch.cuda.get_device_name() if cuda else "no GPU (smoke run on CPU)"
    peak, source = peak_tflops(args, gpu)
    if peak is None:
        print(f"no known bf16 peak for {gpu!r}: pass --peak-tflops (its dense bf16 TFLOP/s)", file=sys.stderr)
        return 2
    print(f"peak used for MFU: {peak:g} TFLOP/s ({source})", file=sys.stderr)
    info = machine | {"gpu": gpu, "cuda": torch.version.cuda, "peak_tflops": peak, "peak_source": source,
                      "smoke": setting.smoke, "repeats": setting.repeats, "warmup": setting.warmup}
    rows, failed, check = [], [], None
    for case in cases:
        try:
            rows.append(run_case(case, setting, transformers, peak))
        except Exception as err:  # noqa: BLE001 - one failing case must not cost a device session the others
            traceback.print_exc()
            failed.append({"number": case.number, "case": f"{case.number}. {case.title}", "error": repr(err)})
        free_device(cuda)
        info["failed"] = failed
        write(args.out, render(rows, info), {"machine": info, "rows": rows})  # a later crash keeps these
        print(f"done: case {case.number}", file=sys.stderr)
    lines = render(rows, info)
    if args.sync_check and cuda:
        try:
            check = sync_check(setting, transformers)
            lines += render_sync(check)
        except Exception as err:  # noqa: BLE001 - as for the cases
            traceback.print_exc()
            failed.append({"number": 0, "case": "sync check", "error": repr(err)})
            lines += ["", f"Sync check failed: {err!r}"]
    elif args.sync_check:
        print("--sync-check needs CUDA; skipped", file=sys.stderr)
    write(args.out, lines, {"machine": info, "rows": rows, "sync_check": check})
    print("\n".join(lines))
    return 1 if failed else 0
