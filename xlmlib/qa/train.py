"""Fine-tuning extractive QA (`xlmlib finetune --task qa|qa-beam`, and xlmlib.finetune with a QA model):
SQuAD-format examples cut into windows with run_qa's labels (windows.py), the span loss, and dev selection
by F1 of run_qa's decoding (answer.predict, metrics.qa_metrics).

The training unit is the window, as in run_qa: every window of a context is trained on, the ones whose
context does not hold the whole answer labelled (0, 0) (the first token). The loss is the head's own (the
mean of the start and end cross-entropies; the beam head adds its answerability loss), summed over windows
so that the trainer divides by the global window count.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..atomic import write_json
from ..tasks import build_model
from ..train import distributed as D
from ..train.config import FinetuneConfig
from ..train.data import EpochOrder
from ..train.finetune import evaluation_table, test_specs
from ..train.selection import fit_and_select
from ..train.step import model_inputs
from .answer import predict
from .heads import QuestionAnsweringBeam
from .metrics import qa_metrics
from .squad import QAExample, examples_from_records, read_squad, references
from .windows import collate, example_windows

logger = logging.getLogger(__name__)


class WindowSource:
    """Shuffled batches of labelled windows, a pure function of (seed, step) like the other sources. The batch
    holds tensors only: start_positions / end_positions (and is_impossible, p_mask, cls_index for the beam
    head), and "labels" = start_positions, which the trainer counts as one target per window."""

    def __init__(self, windows, pad_id: int, batch_size: int, seed: int, *, beam: bool):
        if not windows:
            raise ValueError("no training windows: the training data holds no question")
        self.windows, self.pad_id, self.beam = windows, pad_id, beam
        self.order = EpochOrder(len(windows), batch_size, seed, shuffle=True)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        batch = collate([self.windows[int(i)] for i in self.order(step)], self.pad_id, beam=self.beam)
        labels = batch.pop("labels")
        batch["start_positions"], batch["end_positions"] = labels[0], labels[1]
        if self.beam:
            batch["is_impossible"] = labels[2]
        batch["labels"] = labels[0]
        return batch


class SpanLoss(nn.Module):
    """A QA model's own loss over a batch of windows, summed; "correct" counts windows whose best start (and,
    for QuestionAnswering, best end) token is the labelled one."""

    host_keys = ("attention_mask",)
    options = ("checked",)

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], *, checked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = batch["start_positions"], batch["end_positions"]
        beam = isinstance(self.model, QuestionAnsweringBeam)
        labels = (start, end, batch["is_impossible"]) if beam else (start, end)
        extra = {"p_mask": batch["p_mask"], "cls_index": batch["cls_index"]} if beam else {}
        out = self.model(**model_inputs(batch), labels=labels, checked=checked, **extra)
        hit = out.start_logits.argmax(-1) == start
        if not beam:
            hit = hit & (out.end_logits.argmax(-1) == end)
        return out.loss * start.shape[0], hit.sum()


def to_qa_examples(items, *, what: str = "examples") -> list[QAExample]:
    """QAExamples from a SQuAD JSON path, a list of paths, or a list of dicts / QAExamples."""
    if items is None:
        return []
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            if not Path(item).is_file():
                raise FileNotFoundError(f"{what}: {item}: no such file or directory")
            examples, report = read_squad(item)
            logger.info("%s", report)
            out += examples
        else:
            out += examples_from_records([item], source=what) if isinstance(item, dict) else [item]
    return out


def evaluate_qa(model, tok, examples: Sequence[QAExample], cfg: FinetuneConfig, *, lang: str | None) -> dict:
    """run_qa's decoding of `examples` and their EM / F1 (percent, qa_metrics), with SQuAD v2's rules when some
    question is unanswerable."""
    version_2 = any(e.is_impossible for e in examples)
    predictions = predict(model, tok, examples, lang=lang, max_len=cfg.max_len, doc_stride=cfg.doc_stride,
                          version_2=version_2, batch_size=max(cfg.batch_size, 32), progress=False)
    return qa_metrics(predictions, references(examples), lang=lang)


def finetune_qa(model, tok, train: Sequence[QAExample], dev: Sequence[QAExample], cfg: FinetuneConfig, *,
                lang: str | None = None, dist: D.Dist | None = None, resume: bool = False) -> dict:
    """Fine-tune a QuestionAnswering / QuestionAnsweringBeam model in place on SQuAD-format examples, with dev
    selection by F1 (selection.fit_and_select: the best dev model in OUT/best, reloaded into `model`; the
    score is F1 / 100, the dev result qa_metrics' percentages). Returns {"best", "records"}."""
    d = dist or D.Dist(device=next(model.parameters()).device)
    if cfg.max_len > model.config.max_tokens:
        logger.warning("max_len %d is longer than this model takes; using its limit, %d", cfg.max_len,
                       model.config.max_tokens)
        cfg = dataclasses.replace(cfg, max_len=model.config.max_tokens)
    beam = isinstance(model, QuestionAnsweringBeam)
    windows = example_windows(tok, list(train), lang=lang or None, max_len=cfg.max_len, doc_stride=cfg.doc_stride,
                              labels=True)
    logger.info("%d training questions in %d windows of at most %d tokens", len(train), len(windows), cfg.max_len)
    source = WindowSource(windows, tok.pad_id, cfg.batch_size, cfg.seed, beam=beam)

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        tok.save_pretrained(folder)

    return fit_and_select(model, SpanLoss(model), source, cfg, metric="f1", score=lambda result: result["f1"] / 100,
                          evaluate=(lambda: evaluate_qa(model, tok, dev, cfg, lang=lang or None)) if dev else None,
                          save=save, dist=d, resume=resume)


def run_finetune_qa(cfg: FinetuneConfig, *, resume: bool = False, device: str | None = None) -> dict:
    """`xlmlib finetune --task qa|qa-beam`: read the SQuAD files (refused before anything else when
    malformed), fine-tune, evaluate the best dev model on the test files. Writes OUT/results.json ({"best",
    "test": {file: EM/F1}}) and returns it."""
    from ..tokenize import Tokenizer

    train, dev = to_qa_examples(cfg.train, what="--train"), to_qa_examples(cfg.dev, what="--dev")
    tests = {key: (to_qa_examples(path, what="--test"), lang) for key, path, lang in test_specs(cfg.test, cfg.lang)}
    d = D.setup(device)
    tok = Tokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    model = build_model(cfg.model, cfg.task, init=cfg.init, seed=cfg.seed).to(d.device)
    torch.manual_seed(cfg.seed)
    lang = cfg.lang or None
    result = finetune_qa(model, tok, train, dev, cfg, lang=lang, dist=d, resume=resume)
    result["test"] = {key: evaluate_qa(model, tok, examples, cfg, lang=code or None)
                      for key, (examples, code) in tests.items()}
    result["evaluation"] = evaluation_table(cfg.task, result["test"])
    result.pop("records")
    if d.main:
        write_json(Path(cfg.out, "results.json"), result)
    D.teardown(d)
    return result
