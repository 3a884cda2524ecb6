"""Trainer: exact resume, metrics/PNG/checkpoint outputs, accumulation, masked-only loss, schedules, recipes.

Expected values are either equalities between two runs of our own code (resume, accumulation,
checkpointing) or hand-computed schedule values; no number here comes from an outside reference.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from xlmlib.cli import main
from xlmlib.train.config import TrainConfig, load_recipe, read_recipe
from xlmlib.train.metrics import read_metrics
from xlmlib.train.step import MaskedOnlyLMLoss
from xlmlib.train.trainer import CHECKPOINT, Trainer, lr_factor

from .synthetic import pattern_lines, save_tiny, tiny_config, tiny_model, write_lines

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny model folder (dropout 0.1, so resume must restore the RNG) and two pattern-language files."""
    tmp = tmp_path_factory.mktemp("corpus")
    model = save_tiny(tmp / "tiny", dropout=0.1)
    en = write_lines(tmp / "en.txt", pattern_lines(300, seed=1))
    fr = write_lines(tmp / "fr.txt", pattern_lines(300, seed=2))
    return model, en, fr


def _pretrain(corpus, out, steps, *extra):
    model, en, fr = corpus
    argv = ["pretrain", "--model", str(model), "--objective", "mlm", "--train", str(en), str(fr),
            "--langs", "en,fr", "--steps", str(steps), "--batch-size", "8", "--seq-len", "32", "--lr", "1e-3",
            "--out", str(out), "--tokenizer", str(model / "vocab.txt"), "--no-progress",
            "--schedule", "inverse_sqrt", "--warmup-steps", "3", *extra]
    assert main(argv) == 0
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def test_resume_continues_with_the_identical_loss_sequence(corpus, tmp_path):
    straight = _pretrain(corpus, tmp_path / "a", 12)
    first = _pretrain(corpus, tmp_path / "b", 6)
    resumed = _pretrain(corpus, tmp_path / "b", 12, "--resume")
    assert first == straight[:6]
    assert resumed == straight  # bit-identical: same batches, masks, dropout, optimizer state
    assert len(set(straight)) > 1


def test_outputs_metrics_png_checkpoint_and_a_loadable_model(corpus, tmp_path):
    _pretrain(corpus, tmp_path, 4, "--valid", str(corpus[1]), str(corpus[2]), "--eval-every", "2")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 for r in records)
    assert "eval_loss" in records[1] and "eval_ppl" in records[3] and "eval_loss" not in records[0]
    if importlib.util.find_spec("matplotlib") is not None:  # the dev extra draws it; training never needs it
        assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic save left no temporary file behind
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 4 and {"model", "optimizer", "rng", "schedule", "scaler"} <= set(state)
    from xlmlib import MaskedLM

    assert MaskedLM.from_pretrained(tmp_path / "model").config.vocab_size == tiny_config().vocab_size


class _Fixed:
    """A source returning one fixed masked batch for every step."""

    def __init__(self, batch):
        self._batch = batch

    def batch(self, step):
        return dict(self._batch)


def _masked_batch(rows=8, seed=0):
    from xlmlib.objectives import mask_tokens
    from xlmlib.train.sources import masking_for

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(6, tiny_config().vocab_size, (rows, 16), generator=g)
    m = mask_tokens(x, masking_for(tiny_config(), 0.3), generator=g)
    return {"input_ids": m.input_ids, "labels": m.labels, "langs": torch.zeros_like(x)}


def _losses(tmp_path, steps=3, loss_cls=MaskedOnlyLMLoss, **cfg):
    config = TrainConfig(steps=steps, batch_size=8, lr=1e-3, progress=False, **cfg)
    trainer = Trainer(loss_cls(tiny_model()), config, _Fixed(_masked_batch()), out_dir=tmp_path)
    return [r["loss"] for r in trainer.fit()]


def test_gradient_accumulation_and_checkpointing_match_one_full_batch(tmp_path):
    base = _losses(tmp_path / "a")
    # Accumulation splits the batch 4 ways, so the sums are added in another order: equal to ~1e-6.
    assert _losses(tmp_path / "b", grad_accum=4) == pytest.approx(base, abs=1e-5)
    assert _losses(tmp_path / "c", gradient_checkpointing=True) == pytest.approx(base, abs=1e-6)


class FullProjectionLoss(torch.nn.Module):
    """The LM loss through every row's logits (B x T x V), beside the production module: what
    MaskedOnlyLMLoss must train exactly like."""

    host_keys = ()

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        from xlmlib.losses import full_lm_loss
        from xlmlib.train.step import model_inputs

        h, _ = self.model.encode(**model_inputs(batch))
        logits = self.model.lm_head(h, self.model.embed.tokens)
        labels = batch["labels"]
        keep = labels != -100
        return full_lm_loss(logits, labels, reduction="sum"), (logits.argmax(-1)[keep] == labels[keep]).sum()


def test_masked_only_head_trains_exactly_like_the_full_projection(tmp_path):
    masked = _losses(tmp_path / "a", steps=4)
    full = _losses(tmp_path / "b", steps=4, loss_cls=FullProjectionLoss)
    assert masked == pytest.approx(full, abs=1e-5)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    losses = _losses(tmp_path, steps=4, precision="bf16")
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_lr_schedules_by_hand():
    cfg = TrainConfig(steps=10, warmup_steps=4, schedule="linear")
    # warmup (s+1)/4, then (10 - s)/(10 - 4)
    assert [lr_factor(s, cfg) for s in (0, 3, 4, 7, 10)] == pytest.approx([0.25, 1.0, 1.0, 0.5, 0.0])
    inv = TrainConfig(steps=10, warmup_steps=4, schedule="inverse_sqrt")
    assert lr_factor(15, inv) == pytest.approx(math.sqrt(4 / 16))  # sqrt(warmup / (s + 1))
    assert lr_factor(5, TrainConfig(steps=10)) == 1.0


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs" / "tasks").glob("*.toml")), ids=lambda p: p.name)
def test_every_recipe_loads(recipe):
    kind, values = read_recipe(recipe)
    cfg = load_recipe(recipe)
    assert type(cfg).__name__ == {"pretrain": "TrainConfig", "finetune": "FinetuneConfig", "train_mt": "MTConfig"}[kind]
    assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, list) else v) for k, v in values.items())


def test_unknown_recipe_keys_fail(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pretrain]\nobjective = 'mlm'\nlearning_rate = 1e-4\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_recipe(bad)
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="nsp")


@pytest.mark.parametrize("padded", [False, True])
def test_the_compiled_training_step_is_one_graph(padded):
    """Model + masked-only loss capture as one graph (what compile_step compiles); without capturing the
    data-dependent row selection the same step breaks, so the count can fail."""
    import torch._dynamo

    batch = _masked_batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    if padded:
        batch["attention_mask"][:4, 10:] = 0
    step = MaskedOnlyLMLoss(tiny_model())
    counts = []
    for capture in (True, False):
        torch._dynamo.reset()
        with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=capture):
            counts.append(torch._dynamo.explain(lambda b: step(b)[0])(batch).graph_break_count)
    torch._dynamo.reset()
    assert counts[0] == 0 and counts[1] > 0


def test_compiled_training_equals_eager(tmp_path):
    import torch._dynamo

    base = _losses(tmp_path / "a")
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=False):  # compile_step sets it inside
        compiled = _losses(tmp_path / "b", compile="aot_eager")
    torch._dynamo.reset()
    assert compiled == pytest.approx(base, abs=1e-5)


def test_graph_rows_round_up_by_at_most_an_eighth():
    from xlmlib.train.step import graph_rows

    # Expected values by hand from the rule: steps of max(8, 2 ** (bits of the largest count - 4)).
    assert graph_rows([]) == 0 and graph_rows([0]) == 0 and graph_rows([3, 5]) == 8
    assert graph_rows([1229, 1100]) == 1280  # 1229 has 11 bits: steps of 128
    assert graph_rows([1024]) == 1024 and graph_rows([1025]) == 1152
    for top in range(1, 5000):
        assert top <= graph_rows([top]) <= max(top + 7, top * 9 / 8)


def test_the_step_passes_each_loss_module_what_it_declares():
    """The LM head's fixed row count goes to the LM loss under CUDA graphs only, counted on the CPU batch;
    every module whose model checks inputs gets checked=True after the host checks; nothing else is passed."""
    from xlmlib.train import distributed as D
    from xlmlib.train.step import ClassificationLoss, Step, graph_rows

    batch = _masked_batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    dist = D.Dist(device=torch.device("cpu"))
    lm = MaskedOnlyLMLoss(tiny_model())
    _, options = Step(lm, lm, dist).to_device(batch)
    assert options == {"checked": True}
    _, options = Step(lm, lm, dist, compile="cudagraphs", grad_accum=2).to_device(batch)
    halves = [int((batch["labels"][i:i + 4] != -100).sum()) for i in (0, 4)]
    assert options == {"checked": True, "rows": graph_rows(halves)}
    classify = ClassificationLoss(tiny_model())
    assert Step(classify, classify, dist, compile="cudagraphs").to_device({**batch, "labels": batch["labels"][:, 0]})[1] \
        == {"checked": True}
    bad = {**batch, "input_ids": batch["input_ids"].clone()}
    bad["input_ids"][0, 0] = 10**6
    with pytest.raises(ValueError, match="input_ids contains 1000000"):  # the checks run on the host batch
        Step(lm, lm, dist).to_device(bad)
    torch._dynamo.reset()


@pytest.mark.parametrize("padded", [False, True])
def test_the_cuda_graph_step_is_one_static_graph(padded):
    """With the LM head's row count fixed (graph_rows) the step captures as one graph even without capturing
    data-dependent output shapes: nothing in it depends on the data's values, which CUDA graphs need."""
    import torch._dynamo

    from xlmlib.train.step import count_targets, graph_rows

    batch = _masked_batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    if padded:
        batch["attention_mask"][:4, 10:] = 0
    step = MaskedOnlyLMLoss(tiny_model())
    rows = graph_rows([int(count_targets(batch["labels"]))])
    torch._dynamo.reset()
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=False):
        explained = torch._dynamo.explain(lambda b: step(b, rows=rows)[0])(batch)
    torch._dynamo.reset()
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_cudagraphs_training_equals_eager(tmp_path):
    """--compile cudagraphs as the trainer runs it (head rows counted on the CPU batch, every input on the
    device, static shapes, two micro-batches); without CUDA the step captures the same static graph with
    aot_eager: the eager loss curve within 1e-5. CUDA graphs themselves are checked by
    test_cudagraphs_training_on_cuda and measured by bench.py gpu."""
    import torch._dynamo

    base = _losses(tmp_path / "a")
    graphs = _losses(tmp_path / "b", compile="cudagraphs", grad_accum=2)
    torch._dynamo.reset()
    assert graphs == pytest.approx(base, abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs")
def test_cudagraphs_training_on_cuda(tmp_path):
    """The real mode on a GPU: inductor replays the step as CUDA graphs (its counter of fallbacks stays 0) and
    the loss curve is eager's within 1e-4 (fp32; inductor fuses and reorders sums)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    base = _losses(tmp_path / "a", precision="fp32")
    counters.clear()
    graphs = _losses(tmp_path / "b", precision="fp32", compile="cudagraphs")
    skips = counters["inductor"].get("cudagraph_skips", 0)
    torch._dynamo.reset()
    assert skips == 0
    assert graphs == pytest.approx(base, abs=1e-4)


def test_adamw_is_fused_on_cuda_only():
    from xlmlib.train.trainer import build_optimizer

    config = TrainConfig(steps=1, batch_size=8, lr=1e-3, progress=False)
    assert not build_optimizer(tiny_model(), config).defaults["fused"]
    if torch.cuda.is_available():  # on a GPU machine the same call picks the fused kernel
        assert build_optimizer(tiny_model().cuda(), config).defaults["fused"]
