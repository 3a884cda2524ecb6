"""Fine-tuning's loop with dev selection, the same for every task: train, evaluate the dev data every
cfg.eval_every steps (and at the end) by the task's metric (accuracy, entity F1, QA F1), keep the best model
with its tokenizer in OUT/best, reload it into the model at the end.

The best record is metric-neutral: {"metric": name, "score": value (a fraction), "step": step, "dev": the
evaluation's whole result}; metrics.jsonl logs "dev_score" beside "dev_<metric>", and --resume reads the best score back
from it (older runs logged "dev_accuracy" only, which is read too). Without dev data no selection is made:
OUT/best holds the model after the last step and the record's metric and score are None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from torch import nn

from . import distributed as D
from .config import FinetuneConfig
from .trainer import Trainer

logger = logging.getLogger(__name__)


def fit_and_select(model, loss_module: nn.Module, source, cfg: FinetuneConfig, *, metric: str,
                   evaluate: Callable[[], dict] | None, save: Callable[[Path], None], dist: D.Dist,
                   resume: bool = False, score: Callable[[dict], float] | None = None) -> dict:
    """Train `loss_module` (wrapping `model`) on `source`; evaluate() -> the dev result; score(result) -> the
    selection score, a fraction, higher is better (default: result[metric]); save(folder) writes the model
    and its tokenizer. Returns {"best", "records"}."""
    score = score or (lambda result: result[metric])
    out = Path(cfg.out)
    best = {"metric": metric, "score": None, "step": 0}
    since = best_so_far(out, metric, best) if resume else 0

    def on_eval(module, step):
        nonlocal since
        result = evaluate()
        value = score(result)
        since += 1
        if best["score"] is None or value > best["score"]:
            best.update(score=value, step=step, dev=result)
            since = 0
            if dist.main:
                save(out / "best")
        return {f"dev_{metric}": value, "dev_score": value, "stop": bool(cfg.patience) and since >= cfg.patience}

    trainer = Trainer(loss_module, cfg, source, out_dir=out, evaluate=on_eval if evaluate else None, dist=dist)
    records = trainer.fit(resume=resume)
    if evaluate is None:
        best = {"metric": None, "score": None, "step": trainer.step}
        if dist.main:
            save(out / "best")
        logger.warning("no dev data: no model selection was made; %s holds the model after the last step (%d)",
                       out / "best", trainer.step)
    D.barrier(dist)  # rank 0 has finished writing OUT/best
    if evaluate is not None and (out / "best").is_dir():
        model.load_state_dict(type(model).from_pretrained(out / "best").state_dict())
    return {"best": best, "records": records}


def best_so_far(out: Path, metric: str, best: dict) -> int:
    """Fill `best` with the best dev score an interrupted run logged (so --resume keeps OUT/best unless it is
    beaten); returns the evaluations since then (patience)."""
    from .metrics import read_metrics

    key = "dev_score"
    evals = [r for r in read_metrics(out / "metrics.jsonl") if key in r or "dev_accuracy" in r]
    if not evals:
        return 0
    scores = [r.get(key, r.get("dev_accuracy")) for r in evals]
    top = max(range(len(evals)), key=lambda i: scores[i])
    best.update(score=scores[top], step=evals[top]["step"])
    return sum(r["step"] > evals[top]["step"] for r in evals)
