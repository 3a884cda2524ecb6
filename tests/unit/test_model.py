"""Forward-pass contracts that the parity tests do not cover: input validation, the langs contract,
padding independence, causal masking, and head re-use."""

import warnings

import pytest
import torch
import torch.nn.functional as F

import xlmlib
from xlmlib import ModelConfig


def tiny(**over):
    base = {"vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2, "ffn_dim": 32, "max_positions": 12,
            "n_langs": 2, "langs": ("en", "fr"), "dropout": 0.0, "attention_dropout": 0.0}
    base.update(over)
    return ModelConfig(**base)


def tiny_xlmr(**over):
    base = {"vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2, "ffn_dim": 32, "max_positions": 10,
            "position_offset": 2, "type_vocab_size": 1, "use_lang_emb": False, "norm_eps": 1e-5,
            "zero_pad_rows": False, "pad_index": 1, "eos_index": 2, "mask_index": 39, "head_style": "roberta",
            "dropout": 0.0, "attention_dropout": 0.0}
    base.update(over)
    return ModelConfig(**base)


def model_of(cls, cfg, seed=0):
    torch.manual_seed(seed)
    model = cls(cfg)
    model.reset_parameters()
    return model.eval()


def test_out_of_range_ids_name_the_id():
    model = model_of(xlmlib.Encoder, tiny())
    with pytest.raises(ValueError, match="input_ids contains 40, outside \\[0, 39\\]"):
        model(torch.tensor([[5, 40]]), langs=0)
    with pytest.raises(ValueError, match="input_ids contains -1"):
        model(torch.tensor([[5, -1]]), langs=0)


def test_too_long_input_names_the_limit():
    xlm = model_of(xlmlib.Encoder, tiny())
    with pytest.raises(ValueError, match="at most 12 tokens"):
        xlm(torch.full((1, 13), 5), langs=0)
    xlmr = model_of(xlmlib.Encoder, tiny_xlmr())
    xlmr(torch.full((1, 8), 5))  # 8 real tokens use positions 2..9 of the 10-row table
    with pytest.raises(ValueError, match="at most 8 tokens \\(position offset 2\\)"):
        xlmr(torch.full((1, 9), 5))
    # pads do not count against the limit: they all sit on the padding position
    xlmr(torch.tensor([[5] * 8 + [1] * 4]))


def test_langs_contract():
    model = model_of(xlmlib.Encoder, tiny())
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="needs `langs` \\(language ids: en=0, fr=1\\)"):
        model(ids)
    with pytest.raises(ValueError, match="langs contains 2, outside \\[0, 1\\]"):
        model(ids, langs=2)
    full = model(ids, langs=torch.ones_like(ids)).last_hidden_state
    assert torch.equal(model(ids, langs=1).last_hidden_state, full)  # an int broadcasts
    assert not torch.allclose(model(ids, langs=0).last_hidden_state, full)


def test_langs_for_a_model_without_language_embeddings_warn_once():
    model = model_of(xlmlib.Encoder, tiny(use_lang_emb=False))
    ids = torch.tensor([[5, 6, 7]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = model(ids, langs=1).last_hidden_state
        model(ids, langs=1)
    assert [str(w.message) for w in caught] == ["this model has no language embeddings; `langs` is ignored"]
    assert torch.equal(a, model(ids).last_hidden_state)


def test_bad_token_types_and_shapes():
    model = model_of(xlmlib.Encoder, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="token_type_ids contains 1, outside \\[0, 0\\]"):
        model(ids, token_type_ids=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="input_ids must have shape \\(batch, tokens\\)"):
        model(torch.tensor([5, 6, 7]))
    with pytest.raises(ValueError, match="attention_mask has shape \\(1, 2\\), expected \\(1, 3\\)"):
        model(ids, attention_mask=torch.ones(1, 2))


@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False)])
def test_padding_does_not_change_real_tokens(make):
    """Without an attention_mask, pads are masked from the ids (HF XLM-R would attend them)."""
    cfg = make()
    model = model_of(xlmlib.Encoder, cfg)
    ids = torch.tensor([[5, 6, 7, 8]])
    langs = {"langs": 0} if cfg.has_lang_emb else {}
    alone = model(ids, **langs).last_hidden_state
    padded = model(torch.tensor([[5, 6, 7, 8, cfg.pad_index, cfg.pad_index]]), **langs).last_hidden_state
    torch.testing.assert_close(padded[:, :4], alone, atol=1e-6, rtol=0)


def test_causal_left_padding_equals_unpadded():
    """Our causal mask never attends pads (HF XLM's does on the left), so a left-padded row with explicit
    positions equals the unpadded sequence."""
    model = model_of(xlmlib.CausalLM, tiny())
    ids = torch.tensor([[5, 6, 7]])
    alone = model(ids, langs=0).logits
    left = torch.tensor([[2, 2, 5, 6, 7]])
    mask = (left != 2).long()
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(left, attention_mask=mask, positions=positions, langs=0).logits
    torch.testing.assert_close(out[:, 2:], alone, atol=1e-5, rtol=0)


def test_causal_outputs_ignore_the_future():
    model = model_of(xlmlib.CausalLM, tiny())
    a = model(torch.tensor([[5, 6, 7, 8]]), langs=0).logits
    b = model(torch.tensor([[5, 6, 9, 10]]), langs=0).logits
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_cached_decoding_equals_full_forward():
    model = model_of(xlmlib.CausalLM, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    full = model(ids).logits
    cache = xlmlib.KVCache()
    steps = [model(ids[:, :2], cache=cache).logits]
    for t in range(2, 5):
        mask = torch.ones(1, t + 1, dtype=torch.long)
        steps.append(model(ids[:, t:t + 1], attention_mask=mask, positions=torch.tensor([[t + 2]]), cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_losses_follow_the_reference_definitions():
    """Cross-entropy definitions written out by hand (the references use F.cross_entropy the same way)."""
    model = model_of(xlmlib.CausalLM, tiny_xlmr())
    ids = torch.tensor([[5, 6, 7, 8]])
    out = model(ids, labels=ids)
    logp = out.logits.log_softmax(-1)
    manual = -(logp[0, 0, 6] + logp[0, 1, 7] + logp[0, 2, 8]) / 3
    torch.testing.assert_close(out.loss, manual)
    reg = model_of(xlmlib.SequenceClassifier, tiny_xlmr(num_labels=1))
    out = reg(ids, labels=torch.tensor([0.5]))
    torch.testing.assert_close(out.loss, (out.logits.squeeze() - 0.5) ** 2)


def varlen_stand_in(q, k, v, cu_q, cu_k, max_q, max_k, *, window_size):
    """What torch.nn.attention.varlen.varlen_attn computes (its docstring: N H K packed tensors, int32
    cumulative lengths, window (-1, 0) = causal), written as one SDPA per sequence, so the varlen route's
    bookkeeping (cu_seqlens, longest row, head layout) runs on CPU."""
    assert cu_q.dtype == torch.int32 and torch.equal(cu_q, cu_k) and int(cu_q[-1]) == q.shape[0]
    assert max_q == max_k == int((cu_q[1:] - cu_q[:-1]).max())
    assert window_size in ((-1, -1), (-1, 0))
    out = torch.empty_like(q)
    for start, end in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # H L K
        out[start:end] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=window_size == (-1, 0)).transpose(0, 1)
    return out


def use_route(route, monkeypatch) -> list:
    """Make CPU take an attention route (attention.py): per_row is CPU's own; varlen is CUDA's bf16 route,
    run here through varlen_stand_in; jagged is CUDA's route with dropout or in fp32 (nested tensors, whose
    CPU kernels stand in for CUDA's); grid is the fallback. Returns the list the routes taken are appended
    to, so a test can show its route ran."""
    taken = []
    if route != "per_row":
        monkeypatch.setattr(xlmlib.attention.Packing, "per_row_devices", ())
    if route == "jagged":
        monkeypatch.setattr(xlmlib.attention.Packing, "jagged_devices", ("cpu",))
    if route == "varlen":
        monkeypatch.setattr(xlmlib.attention.Packing, "varlen_devices", ("cpu",))
        monkeypatch.setattr(xlmlib.attention.Packing, "varlen_dtypes", (torch.float32,))
        monkeypatch.setattr(xlmlib.attention, "varlen_kernel", lambda: varlen_stand_in)
    route_of = xlmlib.attention.Packing.route
    monkeypatch.setattr(xlmlib.attention.Packing, "route", lambda self, q, p: taken.append(route_of(self, q, p))
                        or taken[-1])
    return taken


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
@pytest.mark.parametrize("route", ["per_row", "grid", "varlen", "jagged"])
@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False),
                                  lambda: tiny(causal=True)])
def test_skipping_padding_equals_the_padded_path(make, route, monkeypatch):
    """The packed path (dense parts on real tokens only) against the reference layout: real-token outputs
    and every gradient within 1e-5, through each attention route (use_route)."""
    taken = use_route(route, monkeypatch)
    cfg = make()
    torch.manual_seed(1)
    ids = torch.randint(4, 40, (3, 8))
    ids[1, 5:], ids[2, 2:] = cfg.pad_index, cfg.pad_index
    real = ids != cfg.pad_index
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    results = []
    for skip in (False, True):
        model = model_of(xlmlib.TokenClassifier, cfg, seed=2)
        model.skip_padding = skip
        out = model(ids, labels=torch.where(real, ids % 2, -100), output_hidden_states=True, **langs)
        out.loss.backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (ref, ref_grads), (fast, fast_grads) = results
    for a, b in zip(ref.hidden_states, fast.hidden_states):
        torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=0)
        assert torch.count_nonzero(b[~real]) == 0  # padded rows are zeros on the packed path
    torch.testing.assert_close(fast.logits[real], ref.logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.loss, ref.loss, atol=1e-6, rtol=0)
    for name, g in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-5, rtol=1e-4)
    assert taken and set(taken) == {"grid" if route == "jagged" and cfg.causal else route}  # no causal jagged


def test_packed_attention_route_choice(monkeypatch):
    """varlen needs a varlen device, fp16/bf16 and no attention dropout (varlen_attn has none), and torch
    with the kernel; otherwise CPU runs per row, CUDA takes the jagged route, and the masked grid is left
    for other devices and for a batch with an empty row."""
    keep = torch.tensor([[True, True, False], [True, False, False]])
    packing = xlmlib.attention.Packing(keep)
    assert (packing.lengths, packing.n, packing.max_len) == ([2, 1], 3, 2)
    assert packing.cu_seqlens.tolist() == [0, 2, 3] and packing.index.tolist() == [0, 1, 3]
    bf16, fp32 = torch.zeros(3, 4, dtype=torch.bfloat16), torch.zeros(3, 4)
    assert packing.route(bf16, 0.0) == "per_row"
    monkeypatch.setattr(xlmlib.attention.Packing, "varlen_devices", ("cpu",))
    monkeypatch.setattr(xlmlib.attention, "varlen_kernel", lambda: varlen_stand_in)
    assert packing.route(bf16, 0.0) == "varlen"
    assert packing.route(bf16, 0.1) == "per_row" and packing.route(fp32, 0.0) == "per_row"
    monkeypatch.setattr(xlmlib.attention.Packing, "per_row_devices", ())
    assert packing.route(fp32, 0.0) == "grid"
    monkeypatch.setattr(xlmlib.attention, "varlen_kernel", lambda: None)  # torch without varlen_attn
    assert packing.route(bf16, 0.0) == "grid"
    monkeypatch.setattr(xlmlib.attention.Packing, "jagged_devices", ("cpu",))
    assert packing.route(bf16, 0.0) == "jagged" and packing.route(fp32, 0.1) == "jagged"
    empty_row = xlmlib.attention.Packing(torch.tensor([[True, True], [False, False]]))
    causal = xlmlib.attention.Packing(keep, causal=True)
    assert empty_row.route(fp32, 0.0) == "grid" and causal.route(fp32, 0.1) == "grid"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the real varlen and nested-tensor kernels")
@pytest.mark.parametrize(("route", "dtype", "causal"), [
    ("varlen", torch.bfloat16, False), ("varlen", torch.bfloat16, True),
    ("jagged", torch.bfloat16, False), ("jagged", torch.float32, False)])
def test_packed_kernels_equal_per_row_sdpa_on_cuda(route, dtype, causal):
    """On a GPU the real kernels agree with one SDPA per row, forward and backward."""
    torch.manual_seed(0)
    keep = torch.arange(64, device="cuda")[None] < torch.tensor([[64], [17], [40]], device="cuda")
    packing = xlmlib.attention.Packing(keep, causal=causal)
    q, k, v = (torch.randn(packing.n, 128, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    assert packing.route(q, 0.0) == ("varlen" if dtype == torch.bfloat16 else "jagged")
    attend = packing._attend_varlen if route == "varlen" else (lambda *a: packing._attend_jagged(*a, 0.0))
    fast = attend(q, k, v, 4)
    grads = torch.autograd.grad(fast.float().square().sum(), (q, k, v))
    ref = packing._attend_per_row(q, k, v, 4, 0.0)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-4  # two kernels' rounding
    torch.testing.assert_close(fast, ref, atol=tol, rtol=tol)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=5 * tol, rtol=5 * tol)
    assert packing.route(q, 0.1) == ("grid" if causal else "jagged")  # attention dropout in training


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_jagged_route_trains_with_attention_dropout(monkeypatch):
    """The jagged route is CUDA's route for training with attention dropout: it runs it (here on CPU's
    nested-tensor kernels), the output changes with the dropout draw, and gradients reach the weights."""
    taken = use_route("jagged", monkeypatch)
    model = model_of(xlmlib.Encoder, tiny_xlmr(attention_dropout=0.5)).train()
    ids = torch.randint(4, 40, (3, 8))
    ids[1, 5:] = 1
    first, second = model(ids).last_hidden_state, model(ids).last_hidden_state
    assert set(taken) == {"jagged"} and not torch.equal(first, second)
    first.square().mean().backward()
    assert model.layers[0].attn.q_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [tiny, tiny_xlmr])
def test_fused_qkv_equals_three_projections(make, monkeypatch):
    """One GEMM over the stacked q/k/v weights (CUDA's path, forced here on CPU and on this small batch)
    gives the outputs and gradients of three Linear layers (the separate path: a huge fuse_min_rows)."""
    monkeypatch.setattr(xlmlib.attention.SelfAttention, "fuse_devices", ("cpu",))
    cfg = make()
    ids = torch.randint(4, 40, (3, 8))
    langs = {"langs": 1} if cfg.has_lang_emb else {}
    results = []
    for min_rows in (0, 10**9):
        monkeypatch.setattr(xlmlib.attention.SelfAttention, "fuse_min_rows", min_rows)
        model = model_of(xlmlib.MaskedLM, cfg, seed=5)
        out = model(ids, **langs)
        out.logits.square().mean().backward()
        results.append((out.logits, {n: p.grad for n, p in model.named_parameters()}))
    (fused, fused_grads), (separate, separate_grads) = results
    torch.testing.assert_close(fused, separate, atol=1e-6, rtol=0)
    assert fused_grads.keys() == separate_grads.keys() and "layers.0.attn.q_proj.weight" in fused_grads
    for name, g in separate_grads.items():
        torch.testing.assert_close(fused_grads[name], g, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls", [xlmlib.MaskedLM, xlmlib.CausalLM])
def test_masked_only_training_loss_equals_the_full_projection(cls):
    """Training mode projects only labelled rows; loss and gradients equal the full B x T x V projection."""
    cfg = tiny_xlmr()
    torch.manual_seed(3)
    ids = torch.randint(4, 40, (3, 8))
    labels = torch.where(torch.rand(3, 8) < 0.3, ids, torch.full_like(ids, -100))
    results = []
    for masked_only in (True, False):
        model = model_of(cls, cfg, seed=4).train()  # dropout is 0 in tiny configs, so train == eval numerics
        model.masked_only_loss = masked_only
        out = model(ids, labels=labels)
        out.loss.backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (fast, fast_grads), (full, full_grads) = results
    assert fast.logits is None and full.logits is not None
    torch.testing.assert_close(fast.loss, full.loss, atol=1e-6, rtol=0)
    for name, g in full_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-6, rtol=1e-5)


def test_beam_qa_on_inputs_shorter_than_the_beam():
    """start_n_top/end_n_top (5) larger than the sequence: the beam narrows to the tokens there are."""
    model = model_of(xlmlib.QuestionAnsweringBeam, tiny_xlmr())
    out = model(torch.tensor([[5, 6, 7]]))
    assert out.start_top_index.shape == (1, 3) and out.end_top_index.shape == (1, 9)
