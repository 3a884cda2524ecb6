"""Loading and saving HF-format and xlmlib-format folders through the production loader: file variants,
head re-use reports, strictness errors, atomic writes, and hub-name resolution through a local cache."""

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

import xlmlib
from xlmlib import CheckpointError

from ..parity.hf_models import batch, build, roberta_config, transformers, xlm_config


@pytest.fixture()
def xlmr_mlm(tmp_path):
    ref = build("XLMRobertaForMaskedLM", roberta_config(), tmp_path / "mlm")
    return ref, tmp_path / "mlm"


def _same_outputs(a, b, ids, mask):
    with torch.no_grad():
        x, y = a(ids, attention_mask=mask), b(ids, attention_mask=mask)
    field = "logits" if x.logits is not None else "last_hidden_state"
    return (getattr(x, field) - getattr(y, field)).abs().max().item()


def test_head_model_from_another_heads_checkpoint_reports_new_weights(xlmr_mlm, caplog):
    _, path = xlmr_mlm
    with caplog.at_level(logging.INFO, logger="xlmlib"):
        clf = xlmlib.SequenceClassifier.from_pretrained(path, num_labels=3)
    assert clf.config.num_labels == 3
    assert set(clf.new_weights) == {"classifier.dense.weight", "classifier.dense.bias",
                                    "classifier.out_proj.weight", "classifier.out_proj.bias"}
    assert "lm_head.bias" in clf.dropped_weights
    assert "newly initialised SequenceClassifier weights" in caplog.text
    assert clf.classifier.out_proj.weight.shape == (3, 32) and not clf.classifier.out_proj.weight.is_meta
    ids, mask = batch(1)
    assert clf(ids, attention_mask=mask).logits.shape == (3, 3)


def test_xlmlib_format_round_trip_keeps_head_and_options(tmp_path, xlmr_mlm):
    _, path = xlmr_mlm
    clf = xlmlib.SequenceClassifier.from_pretrained(path, num_labels=4)
    clf.save_pretrained(tmp_path / "ours")
    again = xlmlib.SequenceClassifier.from_pretrained(tmp_path / "ours")
    assert again.new_weights == () and again.config == clf.config
    ids, mask = batch(1)
    assert _same_outputs(clf, again, ids, mask) == 0.0
    enc = xlmlib.Encoder(again.config, pooler=True)
    enc.reset_parameters()
    enc.save_pretrained(tmp_path / "enc")
    assert xlmlib.Encoder.from_pretrained(tmp_path / "enc").pooler is not None


def test_bin_and_sharded_checkpoints_load_like_safetensors(tmp_path, xlmr_mlm):
    ref, path = xlmr_mlm
    # transformers 5 writes only safetensors; a pytorch_model.bin is torch.save of the state dict (tied
    # duplicates included), as older versions wrote it.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_bytes((path / "config.json").read_bytes())
    torch.save(ref.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    base = xlmlib.MaskedLM.from_pretrained(path)
    ids, mask = batch(1)
    for variant in ("bin", "sharded"):
        assert _same_outputs(base, xlmlib.MaskedLM.from_pretrained(tmp_path / variant), ids, mask) == 0.0


def test_dtype_and_device_arguments(xlmr_mlm):
    _, path = xlmr_mlm
    model = xlmlib.MaskedLM.from_pretrained(path, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not model.training


def test_missing_files_name_the_file_and_folder(tmp_path, xlmr_mlm):
    _, path = xlmr_mlm
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'}: expected config.json"):
        xlmlib.MaskedLM.from_pretrained(tmp_path / "empty")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"no weights in {path}: looked for model.safetensors"):
        xlmlib.MaskedLM.from_pretrained(path)


def _edit_weights(path, edit):
    state = load_file(path / "model.safetensors")
    edit(state)
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})


def test_shape_mismatch_lists_key_and_both_shapes(xlmr_mlm):
    _, path = xlmr_mlm
    _edit_weights(path, lambda s: s.update({"lm_head.dense.weight": torch.zeros(32, 31)}))
    with pytest.raises(CheckpointError, match=r"lm_head.dense.weight: model expects \(32, 32\), checkpoint has \(32, 31\)"):
        xlmlib.MaskedLM.from_pretrained(path)


def test_unexpected_and_missing_keys_are_listed(tmp_path, xlmr_mlm):
    _, path = xlmr_mlm
    _edit_weights(path, lambda s: s.update({"roberta.encoder.layer.0.adapter.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="do not belong to the HF XLM-R layout.*encoder.layer.0.adapter.weight"):
        xlmlib.MaskedLM.from_pretrained(path)
    build("XLMRobertaForMaskedLM", roberta_config(), tmp_path / "m2")
    _edit_weights(tmp_path / "m2", lambda s: s.pop("roberta.encoder.layer.1.output.dense.weight"))
    with pytest.raises(CheckpointError, match="lacks encoder weights: layers.1.ffn.fc2.weight"):
        xlmlib.MaskedLM.from_pretrained(tmp_path / "m2")


def test_untied_lm_weights_are_refused(tmp_path):
    build("XLMWithLMHeadModel", xlm_config(), tmp_path)
    _edit_weights(tmp_path, lambda s: s.update({"pred_layer.proj.weight": torch.zeros(50, 32)}))
    with pytest.raises(CheckpointError, match="pred_layer.proj.weight should be tied to"):
        xlmlib.MaskedLM.from_pretrained(tmp_path)


def test_unsupported_configs_say_why(tmp_path):
    build("XLMModel", xlm_config(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**meta, "asm": True}))
    with pytest.raises(CheckpointError, match="adaptive-softmax"):
        xlmlib.Encoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**meta, "model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type 'bert' is not XLM or XLM-R"):
        xlmlib.Encoder.from_pretrained(tmp_path)


def test_beam_qa_cannot_be_saved_in_an_hf_layout_that_lacks_it(tmp_path, xlmr_mlm):
    _, path = xlmr_mlm
    model = xlmlib.QuestionAnsweringBeam.from_pretrained(path)
    with pytest.raises(CheckpointError, match="transformers has no HF XLM-R class for QuestionAnsweringBeam"):
        model.save_pretrained(tmp_path / "out", format="hf")
    with pytest.raises(ValueError, match="format must be one of"):
        model.save_pretrained(tmp_path / "out", format="onnx")


def test_interrupted_save_leaves_previous_files_intact(tmp_path, xlmr_mlm, monkeypatch):
    _, path = xlmr_mlm
    model = xlmlib.MaskedLM.from_pretrained(path)
    model.save_pretrained(tmp_path / "out")
    before = (tmp_path / "out" / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("xlmlib.checkpoint.save.save_file", crash)
    with torch.no_grad():
        model.lm_head.bias.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]


def test_hub_name_resolves_through_a_local_cache(tmp_path, xlmr_mlm, monkeypatch):
    ref, _ = xlmr_mlm
    repo = tmp_path / "cache" / "models--FacebookAI--xlm-roberta-base"
    snapshot = repo / "snapshots" / "0123abcd"
    ref.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = xlmlib.MaskedLM.from_pretrained("xlm-roberta-base")
    ids, mask = batch(1)
    real = mask.bool()
    with torch.no_grad():
        diff = model(ids, attention_mask=mask).logits[real] - ref(input_ids=ids, attention_mask=mask).logits[real]
    assert diff.abs().max() < 1e-5


def test_unknown_hub_name_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as err:
        xlmlib.MaskedLM.from_pretrained("xlm-roberta-base")
    text = str(err.value)
    assert str(tmp_path / "cache" / "models--FacebookAI--xlm-roberta-base") in text
    assert "Provide a local directory" in text


def test_transformers_is_not_imported_by_the_library():
    import subprocess
    import sys

    code = "import sys, xlmlib; sys.exit(1 if 'transformers' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert transformers is not None
