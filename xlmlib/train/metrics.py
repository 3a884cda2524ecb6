"""Metrics: DIR/metrics.jsonl (one JSON object per logged step) and a PNG loss curve."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from ..atomic import atomic_path, write_text

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends records to a JSONL file. On resume from step k, records after k are dropped first: they
    came from the part of the interrupted run that the checkpoint does not cover, and the resumed run
    writes them again."""

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if resume_step is not None else []
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> bool:
    """Draw training (and eval, where logged) loss against step. Returns False, with a logged note, when
    matplotlib (the dev extra) is not installed; training never fails for want of a picture."""
    try:
        # Figure without pyplot: no GUI backend is touched, so a notebook's own plotting backend is left alone.
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'xlmlib[dev]'); no loss curve PNG written")
        return False
    records = read_metrics(metrics_path)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for key in ("loss", "eval_loss"):
        points = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if key == "eval_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return True
