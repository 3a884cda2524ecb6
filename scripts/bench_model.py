"""Model benchmarks against transformers: same weights (ours are loaded from the transformers twin's own
save_pretrained folder), same inputs, alternating calls, medians over repeats. Cases:

1. dense: XLM-R base forward fp32, 8x128, tokens/s, GFLOP/s and % of this machine's fp32 matmul rate
2. padded: the same with lengths drawn from 16..128, real tokens/s
3. xlm: XLM 1024-d, 6 layers, 2 languages, forward at T=256 (3b: ours converted to fp32-onednn)
4. mlm-step: XLM-R base MLM training step (forward + backward + fused AdamW), 8x128, 15% masked
5. precision: our int8 and bf16 XLM-R base encoder vs our fp32 (speed, cosine of the outputs)
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import xlmlib

B, T = 8, 128


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over repeats, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternate(ours, theirs, repeats: int) -> tuple[float, float]:
    """Medians of ours and theirs, measured in alternation so both see the same machine state."""
    ours(), theirs()
    a, b = [], []
    for _ in range(repeats):
        for fn, sink in ((ours, a), (theirs, b)):
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def matmul_gflops(repeats: int) -> float:
    """This machine's fp32 GEMM rate on an encoder-shaped product (1024x768 @ 768x3072): the best of
    3 x repeats calls through each CPU GEMM PyTorch offers (MKL's behind F.linear, oneDNN's matmul that
    xlmlib's inference takes), i.e. the peak the encoder's own GEMMs could reach (medians vary with load)."""
    x, w = torch.randn(1024, 768), torch.randn(3072, 768)
    calls = [lambda: F.linear(x, w)]
    if xlmlib.linear._ONEDNN:
        calls.append(lambda: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""))
    best = min(timed(call, 1) for call in calls for _ in range(3 * repeats))
    return 2 * 1024 * 768 * 3072 / best / 1e9


def encoder_flops(cfg, tokens: int, length: int) -> float:
    """Multiply-adds x2 of projections, FFN and attention scores/context for `tokens` tokens."""
    per_token = 2 * (4 * cfg.dim * cfg.dim + 2 * cfg.dim * cfg.ffn_dim + 2 * length * cfg.dim)
    return per_token * cfg.n_layers * tokens


# XLM-R sizes as transformers config fields (the published xlm-roberta-base / -large config.json values);
# "tiny" only exercises the code paths (bench.py gpu --smoke on CPU), its numbers mean nothing.
XLMR_SIZES = {
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "vocab_size": 250002},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
              "vocab_size": 250002},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
             "vocab_size": 1000},
}


def twin_xlmr(transformers, folder, head: str = "Model", size: str = "base"):
    """transformers' XLM-R (XLMR_SIZES[size]) with random weights and SDPA attention, and ours loaded from
    its save_pretrained folder."""
    cfg = transformers.XLMRobertaConfig(**XLMR_SIZES[size], max_position_embeddings=514, type_vocab_size=1,
                                        layer_norm_eps=1e-5, pad_token_id=1, attn_implementation="sdpa")
    torch.manual_seed(0)
    ref = getattr(transformers, f"XLMRoberta{head}")(cfg).eval()
    ref.save_pretrained(folder)
    ours_cls = {"Model": xlmlib.Encoder, "ForMaskedLM": xlmlib.MaskedLM}[head]
    return ours_cls.from_pretrained(folder), ref


def padded_batch(seed: int, low: int = 16, high: int = 128):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (B,), generator=g)
    ids = torch.randint(5, 250000, (B, high), generator=g)
    mask = (torch.arange(high)[None] < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, 1), mask


@torch.no_grad()
def case_forward(transformers, repeats: int, gemm: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        ours, ref = twin_xlmr(transformers, folder)
        cfg = ours.config
        dense = torch.randint(5, 250000, (B, T))
        mask = torch.ones_like(dense)
        a, b = alternate(lambda: ours(dense, attention_mask=mask), lambda: ref(input_ids=dense, attention_mask=mask),
                         repeats)
        gflops = encoder_flops(cfg, B * T, T) / a / 1e9
        rows = [{"case": "1. XLM-R base forward fp32, 8x128 dense", "ours": B * T / a, "transformers": B * T / b,
                 "unit": "tokens/s", "ratio": b / a,
                 "note": f"{gflops:.0f} GFLOP/s = {100 * gflops / gemm:.0f}% of measured fp32 GEMM {gemm:.0f} GFLOP/s"}]
        ids, pmask = padded_batch(1)
        real = int(pmask.sum())
        a, b = alternate(lambda: ours(ids, attention_mask=pmask), lambda: ref(input_ids=ids, attention_mask=pmask),
                         repeats)
        rows.append({"case": "2. XLM-R base forward fp32, 8 rows of 16..128 tokens (padded)", "ours": real / a,
                     "transformers": real / b, "unit": "real tokens/s", "ratio": b / a,
                     "note": f"{real} real of {ids.numel()} tokens; ours skips padding in the dense parts"})
    return rows


@torch.no_grad()
def case_xlm(transformers, repeats: int) -> list[dict]:
    cfg = transformers.XLMConfig(vocab_size=64139, emb_dim=1024, n_layers=6, n_heads=8, n_langs=2,
                                 lang2id={"en": 0, "fr": 1}, id2lang={0: "en", 1: "fr"})
    torch.manual_seed(0)
    ref = transformers.XLMModel(cfg).eval()
    with tempfile.TemporaryDirectory() as folder:
        ref.save_pretrained(folder)
        ours = xlmlib.Encoder.from_pretrained(folder)
    ids = torch.randint(14, 64139, (4, 256))
    langs = torch.ones_like(ids)
    a, b = alternate(lambda: ours(ids, langs=langs), lambda: ref(input_ids=ids, langs=langs), repeats)
    rows = [{"case": "3. XLM 1024-d, 6 layers, 2 languages, forward 4x256", "ours": ids.numel() / a,
             "transformers": ids.numel() / b, "unit": "tokens/s", "ratio": b / a,
             "note": "transformers' XLM uses eager attention and MKL's GEMM; ours SDPA and oneDNN's"}]
    if torch.backends.mkldnn.is_available():
        expected = ours(ids, langs=langs).last_hidden_state
        ours.quantize("fp32-onednn")
        err = (ours(ids, langs=langs).last_hidden_state - expected).abs().max().item()
        a, b = alternate(lambda: ours(ids, langs=langs), lambda: ref(input_ids=ids, langs=langs), repeats)
        rows.append({"case": "3b. the same, ours converted with quantize(\"fp32-onednn\")", "ours": ids.numel() / a,
                     "transformers": ids.numel() / b, "unit": "tokens/s", "ratio": b / a,
                     "note": f"weights prepacked for oneDNN; max abs diff from our default fp32 {err:.1e}"})
    return rows


def _mlm_step(model, ids, labels, opt, ours: bool):
    def step():
        opt.zero_grad(set_to_none=True)
        out = model(ids, labels=labels) if ours else model(input_ids=ids, labels=labels)
        out.loss.backward()
        opt.step()
    return step


def case_mlm_step(transformers, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        ours, ref = twin_xlmr(transformers, folder, head="ForMaskedLM")
    ours.train(), ref.train()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 250000, (B, T), generator=g)
    labels = torch.where(torch.rand(B, T, generator=g) < 0.15, ids, torch.full_like(ids, -100))
    opt_a = torch.optim.AdamW(ours.parameters(), lr=1e-5, fused=True)
    opt_b = torch.optim.AdamW(ref.parameters(), lr=1e-5, fused=True)
    a, b = alternate(_mlm_step(ours, ids, labels, opt_a, True), _mlm_step(ref, ids, labels, opt_b, False), repeats)
    del opt_a, opt_b
    gc.collect()
    return [{"case": "4. XLM-R base MLM training step (fwd + bwd + fused AdamW), 8x128, 15% masked",
             "ours": 1 / a, "transformers": 1 / b, "unit": "steps/s", "ratio": b / a,
             "note": f"{a * 1e3:.0f} ms vs {b * 1e3:.0f} ms; ours projects only the masked rows onto the vocabulary"}]


@torch.no_grad()
def case_precision(transformers, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        fp32, _ = twin_xlmr(transformers, folder)
        int8 = xlmlib.Encoder.from_pretrained(folder).quantize("int8")
        bf16 = xlmlib.Encoder.from_pretrained(folder).quantize("bf16")
    ids = torch.randint(5, 250000, (B, T))
    base = fp32(ids).last_hidden_state
    rows = []
    for name, model in (("int8 (dynamic)", int8), ("bf16 (fp32 LayerNorm)", bf16)):
        a, b = alternate(lambda m=model: m(ids), lambda: fp32(ids), repeats)
        cos = F.cosine_similarity(model(ids).last_hidden_state.float().flatten(1), base.flatten(1), dim=-1)
        rows.append({"case": f"5. XLM-R base encoder {name} vs our fp32, 8x128", "ours": B * T / a,
                     "transformers": B * T / b, "unit": "tokens/s (vs our fp32)", "ratio": b / a,
                     "note": f"min per-sentence cosine with fp32: {cos.min().item():.4f}"})
    return rows


CASES = {"dense": case_forward, "xlm": case_xlm, "mlm-step": case_mlm_step, "precision": case_precision}
