"""Declared routes (xlmlib/routes.py): the pure choice from facts and settings, errors for a route asked for
by name that cannot run, and every route against the padded one (outputs and gradients), each selected
through the model's settings. This file is what VERIFIED's CPU entries cite."""

from __future__ import annotations

import logging

import pytest
import torch

import xlmlib
from xlmlib import routes as R

from .test_model import model_of, tiny, tiny_xlmr

CPU_PADDED = R.Facts(device="cpu", padding=True, rows=100)
ALL = {"attention": "auto", "qkv": "auto", "linear": "auto"}


def test_auto_on_the_cpu_takes_the_preferred_verified_routes():
    assert R.choose(ALL, CPU_PADDED) == R.Routes("per_row", "separate", "onednn")
    assert R.choose(ALL, R.Facts(device="cpu", padding=False, rows=100)).attention == "padded"  # nothing to skip
    for busy in ({"cache": True}, {"compiling": True}):
        assert R.choose(ALL, R.Facts(device="cpu", **busy)).attention == "padded"
    # oneDNN's matmul has no backward, no autocast and no bf16 here: training and mixed precision keep torch
    for facts in ({"grad": True}, {"autocast": True}, {"dtype": torch.bfloat16}, {"compiling": True}):
        assert R.choose(ALL, R.Facts(device="cpu", **facts)).linear == "torch"


def test_auto_on_cuda_is_the_reference_until_verified():
    """No GPU has run gpu_check.sh: padded SDPA, three products, F.linear. Once the table holds a verified
    entry, auto takes the preferred route that can take the call."""
    facts = R.Facts(device="cuda", dtype=torch.bfloat16, rows=512)
    assert R.VERIFIED["cuda"] == {} and R.choose(ALL, facts) == R.Routes("padded", "separate", "torch")
    verified = {"cuda": {"varlen": "test", "jagged": "test", "fused": "test"}}
    assert R.choose(ALL, facts, verified) == R.Routes("varlen", "fused", "torch")
    fp32 = R.Facts(device="cuda", dtype=torch.float32, rows=512)
    assert R.choose(ALL, fp32, verified).attention == "jagged"  # varlen_attn takes fp16/bf16 only
    causal = R.Facts(device="cuda", dtype=torch.float32, rows=512, causal=True)
    assert R.choose(ALL, causal, verified).attention == "padded"  # neither route takes it; grid unverified
    assert R.choose(ALL, R.Facts(device="cuda", rows=8), verified).qkv == "separate"  # decoding: few rows


@pytest.mark.parametrize(("kind", "route", "facts", "why"), [
    ("attention", "varlen", R.Facts(device="cuda", dtype=torch.float32), "takes fp16/bf16"),
    ("attention", "varlen", R.Facts(device="cuda", dtype=torch.bfloat16, dropout=True), "no attention dropout"),
    ("attention", "jagged", R.Facts(device="cpu", causal=True), "no causal mask"),
    ("attention", "jagged", R.Facts(device="cpu", empty_row=True), "no empty row"),
    ("attention", "per_row", R.Facts(device="cpu", cache=True), "KV cache"),
    ("attention", "grid", R.Facts(device="cpu", compiling=True), "compiled graphs"),
    ("linear", "onednn", R.Facts(device="cpu", grad=True), "no backward"),
    ("linear", "onednn", R.Facts(device="cuda"), "runs on the CPU"),
    ("qkv", "fused", R.Facts(device="cpu", quantized=True), "quantized"),
])
def test_a_route_named_that_cannot_run_says_why_and_what_can(kind, route, facts, why):
    with pytest.raises(R.RouteError, match=why) as err:
        R.choose({**ALL, kind: route}, facts)
    assert "routes that can: " in str(err.value)


def test_settings_are_checked_on_assignment_and_never_saved(tmp_path):
    model = model_of(xlmlib.MaskedLM, tiny_xlmr())
    with pytest.raises(R.RouteError, match="attention must be auto or one of padded, grid"):
        model.attention = "flash"
    model.attention, model.qkv, model.linear = "grid", "fused", "torch"
    assert (model.attention, model.qkv, model.linear) == ("grid", "fused", "torch")
    model.save_pretrained(tmp_path)
    assert "grid" not in (tmp_path / "config.json").read_text()
    assert xlmlib.MaskedLM.from_pretrained(tmp_path).attention == "auto"


def test_a_named_route_that_cannot_take_the_call_raises_in_the_forward():
    model = model_of(xlmlib.CausalLM, tiny(causal=True))
    model.attention = "jagged"
    with pytest.raises(R.RouteError, match="jagged' cannot take this call: nested-tensor SDPA takes no causal"):
        model(torch.tensor([[5, 6, 2]]), langs=0)


def test_routes_are_logged_once_per_route_and_device(caplog):
    model = model_of(xlmlib.Encoder, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7, 1], [5, 6, 7, 8]])
    model.attention = "grid"
    R.reset_log()  # whatever ran before in this process, the first call logs its routes again
    with caplog.at_level(logging.INFO, logger="xlmlib.routes"):
        model(ids)
        model(ids)
    said = [r.getMessage() for r in caplog.records if r.getMessage() == "attention route: grid on cpu"]
    assert len(said) == 1


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
@pytest.mark.parametrize("route", ["grid", "per_row", "varlen", "jagged"])
@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False),
                                  lambda: tiny(causal=True)], ids=["xlm", "xlmr", "xl", "xlm-causal"])
def test_every_route_equals_the_padded_route(make, route):
    """Dense parts on the real tokens, attention by each route, against the padded layout: real-token
    outputs and every gradient within 1e-5; padded rows come out as zeros."""
    cfg = make()
    torch.manual_seed(1)
    ids = torch.randint(4, 40, (3, 8))
    ids[1, 5:], ids[2, 2:] = cfg.pad_index, cfg.pad_index
    real = ids != cfg.pad_index
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    if route == "jagged" and cfg.causal:  # nested-tensor SDPA takes no causal mask: refused by name
        model = model_of(xlmlib.TokenClassifier, cfg)
        model.attention = route
        with pytest.raises(R.RouteError, match="no causal mask"):
            model(ids, **langs)
        return
    results = []
    for attention in ("padded", route):
        model = model_of(xlmlib.TokenClassifier, cfg, seed=2)
        model.attention = attention
        assert model.plan(ids).routes.attention == attention
        out = model(ids, labels=torch.where(real, ids % 2, -100), output_hidden_states=True, **langs)
        out.loss.backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (ref, ref_grads), (fast, fast_grads) = results
    for a, b in zip(ref.hidden_states, fast.hidden_states):
        torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=0)
        assert torch.count_nonzero(b[~real]) == 0
    torch.testing.assert_close(fast.logits[real], ref.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.loss, ref.loss, atol=1e-6, rtol=0)
    for name, g in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-5, rtol=1e-4)


def test_the_packing_layout():
    keep = torch.tensor([[True, True, False], [True, False, False]])
    packing = xlmlib.layout.Packing(keep)
    assert (packing.lengths, packing.n, packing.max_len) == ([2, 1], 3, 2)
    assert packing.cu_seqlens.tolist() == [0, 2, 3] and packing.index.tolist() == [0, 1, 3]


def test_the_reference_varlen_kernel_skips_empty_rows():
    """A batch with an empty row: the varlen route (the reference kernel on the CPU) leaves nothing behind."""
    model = model_of(xlmlib.Encoder, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7], [1, 1, 1]])
    model.attention = "varlen"
    out = model(ids).last_hidden_state
    assert torch.count_nonzero(out[1]) == 0 and torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the real varlen and nested-tensor kernels")
@pytest.mark.parametrize(("route", "dtype", "causal"), [
    ("varlen", torch.bfloat16, False), ("varlen", torch.bfloat16, True),
    ("jagged", torch.bfloat16, False), ("jagged", torch.float32, False)])
def test_packed_kernels_equal_per_row_sdpa_on_cuda(route, dtype, causal):
    """On a GPU the real kernels agree with one SDPA per row, forward and backward."""
    from xlmlib.attention import PACKED, attend_per_row

    torch.manual_seed(0)
    keep = torch.arange(64, device="cuda")[None] < torch.tensor([[64], [17], [40]], device="cuda")
    packing = xlmlib.layout.Packing(keep, causal=causal)
    q, k, v = (torch.randn(packing.n, 128, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    fast = PACKED[route](packing, q, k, v, 4, 0.0)
    grads = torch.autograd.grad(fast.float().square().sum(), (q, k, v))
    ref = attend_per_row(packing, q, k, v, 4, 0.0)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-4  # two kernels' rounding
    torch.testing.assert_close(fast, ref, atol=tol, rtol=tol)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=5 * tol, rtol=5 * tol)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_jagged_route_trains_with_attention_dropout():
    """The jagged route takes attention dropout (CUDA's route for it once verified): the output changes with
    the dropout draw, and gradients reach the weights."""
    model = model_of(xlmlib.Encoder, tiny_xlmr(attention_dropout=0.5)).train()
    model.attention = "jagged"
    ids = torch.randint(4, 40, (3, 8))
    ids[1, 5:] = 1
    first, second = model(ids).last_hidden_state, model(ids).last_hidden_state
    assert not torch.equal(first, second)
    first.square().mean().backward()
    assert model.layers[0].attn.q_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [tiny, tiny_xlmr])
def test_fused_qkv_equals_three_projections(make):
    """One GEMM over the stacked q/k/v weights gives the outputs and gradients of three Linear layers."""
    cfg = make()
    ids = torch.randint(4, 40, (3, 8))
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    results = []
    for qkv in ("fused", "separate"):
        model = model_of(xlmlib.MaskedLM, cfg, seed=5)
        model.qkv = qkv
        out = model(ids, **langs)
        out.logits.square().mean().backward()
        results.append((out.logits, {n: p.grad for n, p in model.named_parameters()}))
    (fused, fused_grads), (separate, separate_grads) = results
    torch.testing.assert_close(fused, separate, atol=1e-6, rtol=0)
    assert fused_grads.keys() == separate_grads.keys() and "layers.0.attn.q_proj.weight" in fused_grads
    for name, g in separate_grads.items():
        torch.testing.assert_close(fused_grads[name], g, atol=1e-6, rtol=1e-5)


def test_the_verified_table_reads_unverified_for_cuda():
    lines = R.verified_table()
    assert any(line.split()[:3] == ["attention", "varlen", "cuda"] and line.endswith("unverified") for line in lines)
    assert not any(" cuda " in line and not line.endswith("unverified") for line in lines)
