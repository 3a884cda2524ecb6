"""GPU benchmark against transformers (`python scripts/bench.py gpu`): XLM-R base and large inference and MLM
training steps on one CUDA GPU, by bench_model.py's method: transformers' twin with random weights, ours loaded
from its save_pretrained folder by the production loader, the same inputs, alternating calls, medians over
--repeats after --warmup calls of each.

Timing: one CUDA event pair around each call. torch.cuda.synchronize() runs before the start event and after
the end event, never between them, so a call's time includes its own host-side gaps (launch overhead, host
synchronisations) as a user sees them, and no queued work of the other library.

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
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_model import twin_xlmr

from xlmlib.train import distributed as D
from xlmlib.train.losses import MaskedOnlyLMLoss
from xlmlib.train.step import CUDA_GRAPHS, compile_step, device_batch, graph_rows

PAD = 1  # XLM-R's <pad>; ids 0-3 are the specials, the last id is <mask>
NO_CUDA = "bench.py gpu needs a CUDA GPU; torch.cuda.is_available() is False"
# Dense (no sparsity) bf16 tensor-core TFLOP/s from NVIDIA's spec sheets; the first fragment found in
# torch.cuda.get_device_name() wins, so the PCIe/NVL variants come before the SXM parts.
SPEC_PEAKS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100", 989.0), ("H200", 989.0))


@dataclass(frozen=True)
class Case:
    number: int
    title: str
    size: str  # a key of bench_model.XLMR_SIZES
    train: bool
    rows: int
    low: int  # shortest row; low == high is a dense batch
    high: int
    compiled: bool = False
    dense_twin: int | None = None  # the dense case a variable-length case is compared with
    graphs: bool = False  # a compiled training step replayed as CUDA graphs (inference: compiled implies it)


CASES = (
    Case(1, "XLM-R base inference, 64x128 dense (tokens/s)", "base", False, 64, 128, 128),
    Case(2, "XLM-R base inference, 64 rows of 32..512 padded to the longest (real tokens/s)", "base", False,
         64, 32, 512, dense_twin=1),
    Case(3, "XLM-R large inference, 64x128 dense (tokens/s)", "large", False, 64, 128, 128),
    Case(4, "XLM-R large inference, 64 rows of 32..512 padded to the longest (real tokens/s)", "large", False,
         64, 32, 512, dense_twin=3),
    Case(5, "XLM-R large MLM train step (bf16 autocast, fused AdamW), 16x512 dense, 15% masked (tokens/s)",
         "large", True, 16, 512, 512),
    Case(6, "XLM-R large MLM train step (bf16 autocast, fused AdamW), 32 rows of 64..512, 15% masked "
         "(real tokens/s)", "large", True, 32, 64, 512, dense_twin=5),
    Case(7, "XLM-R base MLM train step, both models torch.compile'd, 16x512, 15% masked (tokens/s)", "base",
         True, 16, 512, 512, compiled=True),
    Case(8, "XLM-R base inference, 64x128 dense, both models torch.compile'd with CUDA graphs "
         "(mode=\"reduce-overhead\", tokens/s)", "base", False, 64, 128, 128, compiled=True),
    Case(9, "XLM-R base MLM train step as CUDA graphs (ours: --compile cudagraphs; transformers: "
         "mode=\"reduce-overhead\"), 16x512, 15% masked (tokens/s)", "base", True, 16, 512, 512, compiled=True,
         graphs=True),
)


@dataclass(frozen=True)
class Setting:
    smoke: bool
    device: torch.device
    infer_dtype: torch.dtype
    compile_backend: str
    repeats: int
    warmup: int

    @classmethod
    def from_args(cls, args) -> Setting:
        if args.smoke:
            return cls(True, torch.device("cpu"), torch.float32, "eager", args.repeats, args.warmup)
        return cls(False, torch.device("cuda"), torch.bfloat16, "inductor", args.repeats, args.warmup)


@dataclass
class Prepared:
    ours: object  # zero-argument calls, one inference or training step each
    theirs: object
    flops: float
    tokens: int  # real tokens per call
    batch: tuple[int, int]  # B x T the call actually receives (padded to the longest row)


def shape(case: Case, smoke: bool) -> tuple[str, int, int, int]:
    """(size, rows, shortest, longest): the case's own, or the tiny CPU stand-in of --smoke."""
    if not smoke:
        return case.size, case.rows, case.low, case.high
    return "tiny", 2, max(2, case.low // 16), case.high // 16


def make_batch(rows: int, low: int, high: int, vocab: int, seed: int):
    """Random ids (above the specials, below <mask>), lengths uniform in low..high, padded to the longest."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (rows,), generator=g)
    width = int(lengths.max())
    ids = torch.randint(4, vocab - 1, (rows, width), generator=g)
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, PAD), mask


def mlm_inputs(ids, mask, vocab: int, seed: int, rate: float = 0.15):
    """round(rate x length) predicted real positions per row (at least one), shown as <mask> (the last id);
    labels hold the original ids there and -100 elsewhere. An exact count keeps the head's work fixed."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(ids.shape, generator=g).masked_fill(mask == 0, 2.0)  # pads sort last, never picked
    rank = scores.argsort(1).argsort(1)
    count = (mask.sum(1) * rate).round().clamp(min=1)
    picked = rank < count[:, None]
    return ids.masked_fill(picked, vocab - 1), torch.where(picked, ids, torch.full_like(ids, -100))


def useful_flops(ours, lengths: list[int], masked: int, train: bool) -> float:
    """The module docstring's count: non-embedding GEMMs, attention on each row's real tokens, masked head."""
    cfg = ours.config
    n = sum(p.numel() for p in ours.layers.parameters())
    tokens, squares = sum(lengths), sum(n_row * n_row for n_row in lengths)
    if not train:
        return 2 * n * tokens + 4 * cfg.n_layers * cfg.dim * squares
    head = 6 * masked * (cfg.dim * cfg.dim + cfg.dim * cfg.vocab_size)
    return 6 * n * tokens + 12 * cfg.n_layers * cfg.dim * squares + head


def inference_calls(ours, ref, ids, mask, setting: Setting, compiled: bool):
    """Ours as the README describes a sync-free forward: ids checked once on the host, the mask passed on
    the CPU (the padding layout is read there), the forward's own checks off. Compiled (case 8), both run as
    one static-shape graph each, replayed as a CUDA graph (inductor's mode="reduce-overhead"), which needs
    every input on the GPU: ours then takes the mask there too (the compiled encoder keeps the masked grid)."""
    ours.check_inputs(ids)
    ours.validate_inputs = False
    ours, ref = (m.to(setting.device, setting.infer_dtype).eval() for m in (ours, ref))
    ids, device_mask = ids.to(setting.device), mask.to(setting.device)
    our_mask = device_mask if compiled else mask
    if compiled:
        ours, ref = compile_for_graphs(ours, setting, fullgraph=True), compile_for_graphs(ref, setting)

    @torch.inference_mode()
    def run_ours():
        new_graph_step(compiled)
        ours(ids, attention_mask=our_mask)

    @torch.inference_mode()
    def run_theirs():
        new_graph_step(compiled)
        ref(input_ids=ids, attention_mask=device_mask)

    return run_ours, run_theirs


def compile_for_graphs(model, setting: Setting, fullgraph: bool = False):
    """Static shapes, CUDA graphs on a GPU (the mode of xlmlib's --compile cudagraphs, train/step.py
    CUDA_GRAPHS); the smoke run only captures the graph (backend "eager")."""
    if setting.smoke:
        return torch.compile(model, backend="eager", dynamic=False, fullgraph=fullgraph)
    return torch.compile(model, dynamic=False, fullgraph=fullgraph, **CUDA_GRAPHS)


def new_graph_step(compiled: bool) -> None:
    """Tell inductor's CUDA-graph trees that a new inference call starts (the previous outputs are dropped)."""
    if compiled and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        torch.compiler.cudagraph_mark_step_begin()


def cudagraph_skips() -> int:
    """How often inductor fell back from CUDA graphs so far (its counter; the reasons are in its log)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"].get("cudagraph_skips", 0))


def training_calls(ours, ref, batch: dict, setting: Setting, case: Case):
    """One step each: forward under bf16 autocast (fp32 parameters), backward, fused AdamW. Gradients are
    dropped at the end of the step so both models do not hold them between calls (memory on an 80 GB GPU).
    Ours runs as xlmlib's trainer runs it: the masked-only loss module with the ids checked once on the host
    and attention_mask/labels kept on the CPU (no host synchronisation), compiled by its compile_step. As CUDA
    graphs (case 9) every input is on the GPU and the head projects graph_rows rows, as the trainer does."""
    ours.masked_only_loss = True
    models = [m.to(setting.device).train() for m in (ours, ref)]
    optims = [torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True) for m in models]
    step_ours = MaskedOnlyLMLoss(ours)
    n_targets = int((batch["labels"] != -100).sum())
    if case.graphs:
        step_ours.fixed_rows = graph_rows([n_targets])
    ours_batch = device_batch(step_ours, batch, D.Dist(device=setting.device), on_device=case.graphs)
    ours.validate_inputs = False  # as inside the trainer's step (step.inputs_checked)
    their_batch = {k: v.to(setting.device) for k, v in batch.items()}
    if case.graphs:
        step_ours, models[1] = compile_for_graphs(step_ours, setting), compile_for_graphs(models[1], setting)
    elif case.compiled:
        step_ours = compile_step(step_ours, setting.compile_backend)
        models[1] = torch.compile(models[1], backend=setting.compile_backend)

    def step_of(loss_of, optim):
        def step():
            new_graph_step(case.graphs)
            with torch.autocast(setting.device.type, dtype=torch.bfloat16):
                loss = loss_of()
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        return step

    return (step_of(lambda: step_ours(ours_batch)[0] / n_targets, optims[0]),
            step_of(lambda: models[1](**their_batch).loss, optims[1]))


def prepare(case: Case, setting: Setting, transformers, folder) -> Prepared:
    size, rows, low, high = shape(case, setting.smoke)
    ours, ref = twin_xlmr(transformers, folder, head="ForMaskedLM" if case.train else "Model", size=size)
    vocab = ours.config.vocab_size
    ids, mask = make_batch(rows, low, high, vocab, seed=case.number)
    lengths = mask.sum(1).tolist()
    if not case.train:
        flops = useful_flops(ours, lengths, 0, train=False)
        calls = inference_calls(ours, ref, ids, mask, setting, case.compiled)
        return Prepared(*calls, flops, sum(lengths), tuple(ids.shape))
    ids, labels = mlm_inputs(ids, mask, vocab, seed=100 + case.number)
    flops = useful_flops(ours, lengths, int((labels != -100).sum()), train=True)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    calls = training_calls(ours, ref, batch, setting, case)
    return Prepared(*calls, flops, sum(lengths), tuple(ids.shape))


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
