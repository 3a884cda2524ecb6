"""A training step needs no host synchronisation on a GPU (issue: no `.item()`, `nonzero` or range check
reading device values in the forward/backward). Checked here without a GPU on torch's meta device: a meta
tensor has shapes but no values, so any op that would read a device value back to the host (.item(),
bool(), .tolist(), nonzero, boolean indexing) raises instead. The model and its inputs sit on meta; the
attention mask and the labels stay on the CPU, as the trainer passes them (train/step.py host_keys)."""

import pytest
import torch

import xlmlib
from tests.unit.test_model import model_of, tiny, tiny_xlmr
from xlmlib.train import distributed as D
from xlmlib.train.step import MaskedOnlyLMLoss


def meta_step(cfg, *, padded: bool, validate: bool = False):
    """Forward + backward of the MLM loss module with the model on meta and mask/labels on the CPU; the
    forward's own range checks skipped (checked=True) as in the training step, unless validate."""
    model = model_of(xlmlib.MaskedLM, cfg).train().to("meta")
    torch.manual_seed(0)
    ids = torch.randint(4, 30, (3, 8))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 5:], mask[2, 2:] = 0, 0
        ids = ids.masked_fill(mask == 0, cfg.pad_index)
    labels = torch.where((torch.rand(3, 8) < 0.4) & (mask == 1), ids, torch.full_like(ids, -100))
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if cfg.has_lang_emb:
        batch["langs"] = torch.ones_like(ids)
    loss_module = MaskedOnlyLMLoss(model)
    batch = D.to_device(batch, D.Dist(device=torch.device("meta")), loss_module.host_keys)
    assert batch["attention_mask"].device.type == "cpu" and batch["input_ids"].device.type == "meta"
    loss, correct = loss_module(batch, checked=not validate)
    loss.backward()
    return loss, correct, model


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("make", [tiny, tiny_xlmr, lambda: tiny_xlmr(pre_norm=True, embed_norm=False)])
def test_training_step_reads_no_device_value(make, padded):
    loss, correct, model = meta_step(make(), padded=padded)
    assert loss.device.type == "meta" and loss.shape == () and correct.shape == ()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters() if p.requires_grad)


def test_inference_with_a_host_mask_reads_no_device_value():
    """Inference (padded, packed) with the mask on the CPU and the forward's checks off, as on a GPU."""
    model = model_of(xlmlib.Encoder, tiny_xlmr()).to("meta")
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        out = model(torch.randint(4, 30, (3, 8)).to("meta"), attention_mask=mask, checked=True)
    assert out.last_hidden_state.shape == (3, 8, 16)


def test_the_meta_check_can_fail():
    """The same step with the forward's own range checks on reads ids back and is caught; so is a
    boolean selection of predicted rows with labels on the device."""
    with pytest.raises(RuntimeError, match="meta"):
        meta_step(tiny_xlmr(), padded=True, validate=True)
    hidden, labels = torch.zeros(2, 3, 4, device="meta"), torch.zeros(2, 3, dtype=torch.long, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        xlmlib.losses.masked_lm_loss(hidden, labels, torch.zeros(5, 4, device="meta"))


def test_host_checked_inputs_still_name_the_bad_id():
    """check_inputs (what the trainer runs on its CPU batch) gives the forward's own error."""
    model = model_of(xlmlib.Encoder, tiny_xlmr())
    with pytest.raises(ValueError, match="input_ids contains 40, outside \\[0, 39\\]"):
        model.check_inputs(torch.tensor([[5, 40]]))
    with pytest.raises(ValueError, match="too long"):
        model.check_inputs(torch.full((1, 9), 5))


def test_rows_picked_through_host_labels_are_the_boolean_selection():
    """CPU labels pick rows by index (the path above); they are the rows and labels a boolean mask picks."""
    torch.manual_seed(3)
    hidden = torch.randn(3, 8, 4)
    labels = torch.where(torch.rand(3, 8) < 0.4, torch.randint(0, 9, (3, 8)), torch.full((3, 8), -100))
    rows, targets = xlmlib.losses.predicted_rows(hidden, labels)
    selected = labels != -100
    assert torch.equal(rows, hidden[selected]) and torch.equal(targets, labels[selected])
    meta_rows, meta_targets = xlmlib.losses.predicted_rows(hidden.to("meta"), labels)
    assert meta_rows.shape == rows.shape and meta_targets.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode")
@pytest.mark.parametrize(("padded", "attention_dropout"), [(False, 0.0), (True, 0.0), (True, 0.1)])
def test_training_step_has_no_host_sync_on_cuda(padded, attention_dropout):
    """Dense, padded and padded with attention dropout, on every attention route CUDA takes by "auto" once
    verified (routes.py), here named: varlen (bf16, no dropout) or jagged (dropout)."""
    cfg = tiny_xlmr(attention_dropout=attention_dropout)
    model = model_of(xlmlib.MaskedLM, cfg).train().cuda()
    model.attention = "jagged" if attention_dropout else "varlen" if padded else "padded"
    ids = torch.randint(4, 30, (3, 8))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 5:] = 0
    labels = torch.where(torch.rand(3, 8) < 0.4, ids, torch.full_like(ids, -100))
    loss_module = MaskedOnlyLMLoss(model)
    batch = D.to_device({"input_ids": ids, "attention_mask": mask, "labels": labels},
                        D.Dist(device=torch.device("cuda")), loss_module.host_keys)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = loss_module(batch, checked=True)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
