"""Translator: logits against an independent reading of the original (mt_reference.py), both .pth layouts
and their 2019 variants, folders, from_encoder, and the forward contract of xlm-mt.md section 6."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

import xlmlib
from xlmlib.checkpoint import CheckpointError

from . import mt_reference as ref

V, D, L, H, N_LANGS = 40, 16, 2, 4, 3
SRC = torch.tensor([[1, 20, 21, 22, 23, 1], [1, 24, 25, 1, 2, 2]])
TGT = torch.tensor([[1, 30, 31, 32, 1], [1, 33, 1, 2, 2]])


@contextlib.contextmanager
def _saved_as_cuda():
    """Tag every CPU storage written meanwhile as 'cuda:0', as files saved from a GPU are (no GPU needed)."""
    registry = torch.serialization._package_registry
    entry = (0, lambda obj: "cuda:0" if obj.device.type == "cpu" else None, lambda obj, loc: None)
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


def _write(tmp_path, *, gelu=True, layout="head", ddp=False, legacy=False, cuda=False, seed=0):
    enc = ref.part_state(V, D, L, N_LANGS, decoder=False, seed=seed)
    dec = ref.part_state(V, D, L, N_LANGS, decoder=True, seed=seed + 1)
    prm = ref.params(V, D, L, H, N_LANGS, gelu=gelu)
    with _saved_as_cuda() if cuda else contextlib.nullcontext():
        path = ref.write_mt_pth(tmp_path / "mt" / "best-valid_mt_bleu.pth", enc, dec, prm, layout=layout,
                                ddp=ddp, legacy=legacy)
    return path, enc, dec, prm


def _real_diff(model, enc, dec, prm):
    lens_src, lens_tgt = (SRC != 2).sum(1), (TGT != 2).sum(1)
    expected = ref.reference_logits(enc, dec, prm, SRC, lens_src, 1, TGT, lens_tgt, 2)
    got = model(SRC, langs=1, decoder_input_ids=TGT, decoder_langs=2).logits
    real = TGT != 2
    return (got - expected).abs()[real].max().item()


@pytest.mark.parametrize("gelu,layout,ddp,legacy,cuda", [
    (True, "head", False, False, False),
    (False, "head", True, False, False),   # ReLU (train.py's default) and DDP's module. prefix
    (True, "2019", True, True, True),     # save_model layout, legacy non-zip pickle, cuda:0 storages
    (False, "2019", False, True, False),
])
def test_pth_logits_match_the_independent_reading(tmp_path, gelu, layout, ddp, legacy, cuda):
    path, enc, dec, prm = _write(tmp_path, gelu=gelu, layout=layout, ddp=ddp, legacy=legacy, cuda=cuda)
    if legacy:
        assert path.read_bytes()[:1] == b"\x80"  # a bare pickle, not a zip
    model = xlmlib.Translator.from_pretrained(path)
    assert model.config.activation == ("gelu" if gelu else "relu")
    assert model.config.langs == ("de", "en", "fr")
    assert model.new_weights == ()
    # The contract: <= 1e-5 in fp32 on real positions (xlm-mt.md section 6).
    assert _real_diff(model, enc, dec, prm) <= 1e-5


def test_hand_computed_case():
    """D=2, every projection and FFN weight zero: each sub-layer adds its bias only, so with zero biases and
    unit LayerNorms, h = LN(token + position) at every layer. LN of [a, b] with a > b is [1, -1]
    (mean (a+b)/2, deviation |a-b|/2), so logits[v] = E[v, 0] - E[v, 1] + bias[v] whatever the source."""
    cfg = xlmlib.ModelConfig(vocab_size=8, dim=2, n_layers=1, n_heads=1, ffn_dim=8, dropout=0.0,
                             attention_dropout=0.0)
    model = xlmlib.Translator(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
        table = torch.tensor([[0.0, 0], [5, 1], [0, 0], [2, 3], [1, 1.5], [4, 0], [0, 2], [3, 0]])
        model.decoder.embed.tokens.weight.copy_(table)
        model.encoder.embed.tokens.weight.copy_(table)
        model.decoder.lm_head.bias.copy_(torch.arange(8.0) / 10)
    out = model(torch.tensor([[1, 5, 7, 1]]), decoder_input_ids=torch.tensor([[1, 5, 1]]),
                labels=torch.tensor([[1, 5, 1]]))
    # Decoder inputs 1 ([5, 1]) and 5 ([4, 0]) both have a > b, so h = [1, -1] at every position.
    expected_row = table[:, 0] - table[:, 1] + torch.arange(8.0) / 10
    assert torch.allclose(out.logits[0], expected_row.expand(3, 8), atol=1e-5)
    # Loss: mean over the two predicted positions (targets 5 and 1) of -log softmax(expected_row).
    logp = expected_row.log_softmax(-1)
    assert math.isclose(out.loss.item(), -(logp[5] + logp[1]).item() / 2, rel_tol=1e-5)


def test_loss_ignores_minus_100_and_skips_the_first_label(tmp_path):
    path, *_ = _write(tmp_path)
    model = xlmlib.Translator.from_pretrained(path)
    labels = TGT.masked_fill(TGT == 2, -100)
    out = model(SRC, langs=1, decoder_input_ids=TGT, decoder_langs=2, labels=labels)
    logits, targets = out.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten()
    keep = targets != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(out.loss, manual)
    changed = labels.clone()
    changed[:, 0] = 7  # position 0 is never predicted (the leading </s>)
    assert torch.equal(model(SRC, langs=1, decoder_input_ids=TGT, decoder_langs=2, labels=changed).loss, out.loss)


def test_masks_causality_and_source_padding(tmp_path):
    path, *_ = _write(tmp_path)
    model = xlmlib.Translator.from_pretrained(path)
    base = model(SRC, langs=1, decoder_input_ids=TGT, decoder_langs=2).logits
    later = TGT.clone()
    later[0, 3] = 9  # a later target token cannot change earlier positions
    moved = model(SRC, langs=1, decoder_input_ids=later, decoder_langs=2).logits
    assert torch.equal(moved[0, :3], base[0, :3]) and not torch.equal(moved[0, 3:], base[0, 3:])
    wider = torch.cat([SRC, torch.full((2, 3), 2)], dim=1)  # more source padding changes nothing
    assert torch.allclose(model(wider, langs=1, decoder_input_ids=TGT, decoder_langs=2).logits, base, atol=1e-6)


def test_folder_round_trip_is_exact(tmp_path):
    path, *_ = _write(tmp_path)
    model = xlmlib.Translator.from_pretrained(path)
    model.save_pretrained(tmp_path / "saved")
    again = xlmlib.Translator.from_pretrained(tmp_path / "saved")
    assert again.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_decoder_depth_from_the_tensors(tmp_path):
    enc = ref.part_state(V, D, 2, N_LANGS, decoder=False, seed=0)
    dec = ref.part_state(V, D, 1, N_LANGS, decoder=True, seed=1)
    path = ref.write_mt_pth(tmp_path / "m.pth", enc, dec, ref.params(V, D, 2, H, N_LANGS, gelu=True))
    model = xlmlib.Translator.from_pretrained(path)
    assert len(model.encoder.layers) == 2 and len(model.decoder.layers) == 1
    model.save_pretrained(tmp_path / "saved")
    assert len(xlmlib.Translator.from_pretrained(tmp_path / "saved").decoder.layers) == 1


def test_bad_checkpoints_are_named(tmp_path):
    _path, enc, dec, prm = _write(tmp_path)
    broken = dict(dec)
    del broken["layer_norm15.1.weight"]
    bad = ref.write_mt_pth(tmp_path / "bad" / "m.pth", enc, broken, prm)
    with pytest.raises(CheckpointError, match="layer_norm15.1.weight|cross_norm"):
        xlmlib.Translator.from_pretrained(bad)
    extra = ref.write_mt_pth(tmp_path / "extra" / "m.pth", enc, {**dec, "memories.0.keys": torch.zeros(2)}, prm)
    with pytest.raises(CheckpointError, match="memories.0.keys"):
        xlmlib.Translator.from_pretrained(extra)
    mlm = tmp_path / "mlm.pth"
    torch.save({"model": enc, "params": prm}, mlm)
    with pytest.raises(CheckpointError, match="from_encoder"):
        xlmlib.Translator.from_pretrained(mlm)


def test_from_encoder_copies_both_halves_and_reports_cross_attention(tmp_path, caplog):
    enc = ref.part_state(V, D, L, N_LANGS, decoder=False, seed=3)
    prm = ref.params(V, D, L, H, N_LANGS, gelu=True)
    folder = tmp_path / "mlm"
    folder.mkdir()
    torch.save({"model": enc, "params": prm}, folder / "mlm.pth")
    (folder / "codes_test").write_text("w 0 1\n")
    with caplog.at_level("WARNING"):
        model = xlmlib.Translator.from_encoder(folder / "mlm.pth")
    assert "cross_attn" in caplog.text
    new = set(model.new_weights)
    assert new and all(".cross_attn." in k or ".cross_norm." in k for k in new)
    assert len(new) == L * 10  # 4 linears x (weight, bias) + LayerNorm (weight, bias) per layer
    for half in (model.encoder, model.decoder):
        assert torch.equal(half.embed.tokens.weight, enc["embeddings.weight"])
        assert torch.equal(half.layers[1].ffn.fc2.weight, enc["ffns.1.lin2.weight"])
    # Equal values, separate tensors: training one half must not move the other.
    assert model.encoder.embed.tokens.weight.data_ptr() != model.decoder.embed.tokens.weight.data_ptr()
    model.save_pretrained(tmp_path / "saved")  # safetensors refuses shared tensors
    assert torch.equal(model.decoder.layers[0].cross_norm.weight, torch.ones(D))


def test_from_encoder_of_an_xlmr_family_model(tmp_path):
    cfg = xlmlib.ModelConfig.from_preset("xlm-roberta-base").replace(n_layers=2, dim=32, n_heads=4, ffn_dim=64,
                                                                      vocab_size=50, mask_index=49)
    torch.manual_seed(0)
    mlm = xlmlib.MaskedLM(cfg)
    mlm.reset_parameters()
    mlm.save_pretrained(tmp_path / "xlmr")
    model = xlmlib.Translator.from_encoder(tmp_path / "xlmr", decoder_layers=1)
    assert model.decoder.lm_head.dense is not None  # roberta-style head copied, not re-initialised
    assert torch.equal(model.decoder.lm_head.dense.weight, mlm.lm_head.dense.weight)
    src = torch.tensor([[0, 10, 11, 2]])  # XLM-R ids: </s> is 2, pad 1
    ids = model.generate(torch.tensor([[2, 10, 11, 2]]), max_new_tokens=5)
    assert ids.shape[0] == 1 and ids[0, 0] == 2 and ids[0, -1] in (1, 2)
    assert model(src, decoder_input_ids=ids).logits.shape == (1, ids.shape[1], 50)
