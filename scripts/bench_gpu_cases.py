"""The cases of `bench.py gpu` (bench_gpu.py times them): XLM-R base and large inference and MLM training
steps, ours and transformers' on the same weights and inputs. Ours runs as xlmlib runs for a user: inference
with the ids checked once on the host and the mask passed on the CPU; training through the trainer's own
Step (xlmlib/train/step.py: host/device split, checks, compiling, CUDA graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from bench_model import twin_xlmr

from xlmlib.train import distributed as D
from xlmlib.train.step import MaskedOnlyLMLoss, Step

PAD = 1  # XLM-R's <pad>; ids 0-3 are the specials, the last id is <mask>
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
    """Ours as the README describes a sync-free forward: ids checked once on the host (checked=True), the mask
    passed on the CPU (the padding layout is read there). Compiled (case 8), both run as one static-shape
    graph each, replayed as a CUDA graph (inductor's mode="reduce-overhead"), which needs every input on the
    GPU: ours then takes the mask there too (compiled, the encoder takes the padded route)."""
    ours.check_inputs(ids)
    ours, ref = (m.to(setting.device, setting.infer_dtype).eval() for m in (ours, ref))
    ids, device_mask = ids.to(setting.device), mask.to(setting.device)
    our_mask = device_mask if compiled else mask
    if compiled:
        ours, ref = compile_for_graphs(ours, setting, fullgraph=True), compile_for_graphs(ref, setting)

    @torch.inference_mode()
    def run_ours():
        new_graph_step(compiled)
        ours(ids, attention_mask=our_mask, checked=True)

    @torch.inference_mode()
    def run_theirs():
        new_graph_step(compiled)
        ref(input_ids=ids, attention_mask=device_mask)

    return run_ours, run_theirs


def compile_for_graphs(model, setting: Setting, fullgraph: bool = False):
    """Static shapes, CUDA graphs on a GPU (the mode of xlmlib's --compile cudagraphs, train/step.py
    compile_step); the smoke run only captures the graph (backend "eager")."""
    if setting.smoke:
        return torch.compile(model, backend="eager", dynamic=False, fullgraph=fullgraph)
    return torch.compile(model, dynamic=False, fullgraph=fullgraph, mode="reduce-overhead")


def new_graph_step(compiled: bool) -> None:
    """Tell inductor's CUDA-graph trees that a new call starts (the previous outputs are dropped)."""
    if compiled and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        torch.compiler.cudagraph_mark_step_begin()


def training_calls(ours, ref, batch: dict, setting: Setting, case: Case):
    """One step each: forward under bf16 autocast (fp32 parameters), backward, AdamW (fused on a GPU).
    Gradients are dropped at the end of the step so both models do not hold them between calls (memory on an
    80 GB GPU). Ours is the trainer's Step over the masked-only loss module: ids checked on the host,
    attention_mask and labels kept on the CPU (no host synchronisation), compiled as the trainer compiles
    (--compile inductor, or cudagraphs: every input on the GPU, the head projecting graph_rows rows)."""
    models = [m.to(setting.device).train() for m in (ours, ref)]
    optims = [torch.optim.AdamW(m.parameters(), lr=1e-5, fused=setting.device.type == "cuda") for m in models]
    loss_module = MaskedOnlyLMLoss(ours)
    compile = "cudagraphs" if case.graphs else setting.compile_backend if case.compiled else "off"
    step = Step(loss_module, loss_module, D.Dist(device=setting.device), compile=compile, amp_dtype=torch.bfloat16)
    their_batch = {k: v.to(setting.device) for k, v in batch.items()}
    if case.graphs:
        models[1] = compile_for_graphs(models[1], setting)
    elif case.compiled:
        models[1] = torch.compile(models[1], backend=setting.compile_backend)

    def run_ours():
        step(batch)
        optims[0].step()
        optims[0].zero_grad(set_to_none=True)

    def run_theirs():
        new_graph_step(case.graphs)
        with torch.autocast(setting.device.type, dtype=torch.bfloat16):
            loss = models[1](**their_batch).loss
        loss.backward()
        optims[1].step()
        optims[1].zero_grad(set_to_none=True)

    return run_ours, run_theirs


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
