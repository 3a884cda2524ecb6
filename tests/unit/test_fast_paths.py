"""Fast paths: CPU inference through oneDNN's kernel keeps the fp32 numbers, int8 and bf16 inference stay
close to fp32, torch.compile traces the encoder without graph breaks, and the ONNX export runs in
onnxruntime to the same outputs."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import xlmlib
from xlmlib import routes as R
from xlmlib.linear import call_facts, linear
from xlmlib.precision import Int8Embedding, Int8Linear, OneDNNLinear

from .test_model import model_of, tiny, tiny_xlmr


def medium_xlmr(**over):
    """Wide enough for quantization error to average out like in real models (dim 128)."""
    return tiny_xlmr(dim=128, n_heads=4, ffn_dim=512, vocab_size=500, mask_index=499, **over)


def batch(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, cfg.vocab_size, (3, 8), generator=g)
    ids[2, 5:] = cfg.pad_index
    return ids


def cosine(a, b, real):
    return F.cosine_similarity(a[real].flatten().float(), b[real].flatten().float(), dim=0).item()


needs_onednn = pytest.mark.skipif(not R.ONEDNN_AVAILABLE, reason="this torch build has no oneDNN matmul")
ONEDNN = R.Routes(linear="onednn", linear_min_weight=0)  # what model.linear = "onednn" gives every product


@needs_onednn
@pytest.mark.parametrize("activation", ["none", "gelu", "relu"])
@pytest.mark.parametrize("shape", [(7, 96), (2, 5, 96), (0, 96)], ids=["rows", "batch", "empty"])
def test_onednn_linear_equals_f_linear(activation, shape):
    g = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(shape, generator=g), torch.randn(80, 96, generator=g), torch.randn(80, generator=g)
    expected = {"none": lambda y: y, "gelu": F.gelu, "relu": F.relu}[activation](F.linear(x, weight, bias))
    with torch.no_grad():
        torch.testing.assert_close(linear(x, weight, bias, activation, routes=ONEDNN), expected, atol=1e-5, rtol=0)
        strided = x.transpose(0, -1).contiguous().transpose(0, -1)  # the same values, not row-major
        torch.testing.assert_close(linear(strided, weight, bias, activation, routes=ONEDNN), expected, atol=1e-5,
                                   rtol=0)


def test_onednn_rule():
    """oneDNN's kernel has no backward and no autocast: under "auto" only fp32 CPU products that want no
    gradient take it, and only for weights of at least ONEDNN_MIN_WEIGHT elements."""
    x, small, big = torch.randn(4, 256), torch.randn(8, 256), torch.randn(256, 256, requires_grad=True)

    def auto(x, w):
        return R.Routes(linear=R.choose_one("linear", "auto", call_facts(x, w, None))).product(w)

    onednn = "onednn" if R.ONEDNN_AVAILABLE else "torch"
    with torch.no_grad():
        assert auto(x, big) == onednn and auto(x, small) == "torch"  # 2048 elements < 256 x 256
        assert auto(x.double(), big.double()) == "torch"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert auto(x, big) == "torch"
    assert auto(x, big) == "torch"  # grad mode with a weight that requires grad
    assert auto(x, big.detach()) == onednn  # frozen weight and input
    with pytest.raises(ValueError, match="activation must be one of"):
        linear(x, big, activation="tanh")


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@needs_onednn
def test_inference_takes_onednn_and_training_does_not():
    """With model.linear = "onednn", every Linear of a no-grad forward (4 attention + 2 FFN per layer, the LM
    head's dense and its tied projection) runs as one oneDNN call, GELU included; under "auto" a forward that
    builds a graph runs none."""
    cfg = medium_xlmr()
    model, ids = model_of(xlmlib.MaskedLM, cfg), batch(cfg)
    model.linear = "onednn"
    with torch.no_grad(), _OpRecorder() as inference:
        got = model(ids)
    model.linear = "auto"
    with _OpRecorder() as training:
        expected = model(ids)
    calls = [op for op in inference.ops if "_linear_pointwise" in op]
    assert len(calls) == 6 * cfg.n_layers + 2
    assert not any("gelu" in op for op in inference.ops)  # fused into fc1 and the head's dense
    assert not any("_linear_pointwise" in op for op in training.ops)
    real = ids != cfg.pad_index
    torch.testing.assert_close(got.logits[real], expected.logits[real].detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_quantized_outputs_stay_close_to_fp32(mode):
    cfg = medium_xlmr()
    ids = batch(cfg)
    real = ids != cfg.pad_index
    ref = model_of(xlmlib.MaskedLM, cfg)
    with torch.no_grad():
        expected = ref(ids)
        quant = model_of(xlmlib.MaskedLM, cfg).quantize(mode)
        got = quant(ids)
    assert cosine(got.last_hidden_state, expected.last_hidden_state, real) >= 0.99
    assert cosine(got.logits, expected.logits, real) >= 0.99
    assert quant.precision == mode and not any(p.requires_grad for p in quant.parameters())


def test_int8_covers_linears_and_the_token_table():
    model = model_of(xlmlib.MaskedLM, medium_xlmr()).quantize("int8")
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert isinstance(model.embed.tokens, Int8Embedding) and model.embed.tokens.qweight.dtype == torch.int8
    assert isinstance(model.lm_head.quantized, Int8Linear)
    with pytest.raises(ValueError, match="already converted to int8"):
        model.quantize("bf16")
    with pytest.raises(ValueError, match="converted to int8 cannot be saved"):
        model.save_pretrained("unused")
    with pytest.raises(ValueError, match="mode must be one of"):
        model_of(xlmlib.Encoder, medium_xlmr()).quantize("int4")


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_onednn_keeps_the_fp32_numbers():
    """fp32-onednn only changes which library multiplies: outputs equal plain fp32 within 1e-5."""
    cfg = medium_xlmr()
    ids = batch(cfg)
    real = ids != cfg.pad_index
    with torch.no_grad():
        plain = model_of(xlmlib.MaskedLM, cfg)
        plain.linear = "torch"  # the expected numbers from F.linear alone
        expected = plain(ids)
        model = model_of(xlmlib.MaskedLM, cfg).quantize("fp32-onednn")
        got = model(ids)
    assert isinstance(model.layers[0].attn.q_proj, OneDNNLinear)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    torch.testing.assert_close(got.last_hidden_state[real], expected.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.logits[real], expected.logits[real], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cannot be saved"):
        model.save_pretrained("unused")


def test_bf16_keeps_layernorm_in_fp32():
    model = model_of(xlmlib.Encoder, medium_xlmr()).quantize("bf16")
    assert model.layers[0].attn_norm.weight.dtype == torch.float32
    assert model.layers[0].ffn.fc1.weight.dtype == torch.bfloat16
    assert model(batch(model.config)).last_hidden_state.dtype == torch.bfloat16


@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False)])
def test_compile_traces_without_graph_breaks(make):
    """fullgraph=True fails on any graph break; a backend that runs the graph as traced (no code generation)
    records its calls. The graph holds no oneDNN kernel call (routes.py leaves compiled graphs' products to
    the compiler, whose CPU backend picks its own kernels)."""
    cfg = make()
    model = model_of(xlmlib.MaskedLM, cfg)
    ids = batch(cfg)
    langs = {"langs": torch.ones_like(ids)} if cfg.has_lang_emb else {}
    calls = []

    def backend(graph_module, example_inputs):
        calls.extend(str(node.target) for node in graph_module.graph.nodes if node.op == "call_function")
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    with torch.no_grad():
        got = compiled(ids, **langs).logits
        model.attention = "padded"  # compiled code keeps the padded layout (shapes must not depend on data)
        expected = model(ids, **langs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert any("linear" in call for call in calls) and not any("mkldnn" in call for call in calls)


@pytest.mark.slow
def test_inductor_compile_matches_eager():
    cfg = tiny_xlmr()
    model = model_of(xlmlib.MaskedLM, cfg)
    model.attention = "padded"
    ids = batch(cfg)
    torch._dynamo.reset()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(ids).logits, model(ids).logits,
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [tiny, tiny_xlmr])
def test_onnx_export_runs_in_onnxruntime(tmp_path, make):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")  # torch's ONNX exporter needs it (the onnx extra)
    from xlmlib.export import export_onnx

    cfg = make()
    model = model_of(xlmlib.Encoder, cfg)
    path = export_onnx(model, tmp_path / "encoder.onnx")
    assert (tmp_path / "encoder.onnx.data").is_file()  # weights as external data (the >2 GB route)
    ids = batch(cfg, seed=3)[:, :7]  # another shape than the export example: dynamic axes
    mask = (ids != cfg.pad_index).long()
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    if cfg.has_lang_emb:
        feed["langs"] = torch.ones_like(ids).numpy()
    got = torch.from_numpy(ort.InferenceSession(str(path)).run(None, feed)[0])
    model.attention = "padded"
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, **({"langs": 1} if cfg.has_lang_emb else {})).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
