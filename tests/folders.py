"""Saved model folders and CLI runs, as the end-to-end and API tests use them: a tiny random XLM-R-shaped
model saved with save_pretrained beside the real XLM-R SentencePiece tokenizer (shared assets), and the
`xlmlib` command run in a subprocess the way a user types it."""

import os
import subprocess
import sys
from pathlib import Path

import torch

import xlmlib

ROOT = Path(__file__).resolve().parents[1]


def save_tiny_xlmr(folder: Path, assets: Path, cls=xlmlib.MaskedLM, **changes) -> Path:
    """1 layer, width 16, 2 heads, FFN 32 (seed 0); `changes` replace further ModelConfig fields."""
    cfg = xlmlib.ModelConfig.from_preset("xlm-roberta-base").replace(n_layers=1, dim=16, n_heads=2, ffn_dim=32,
                                                                      **changes)
    torch.manual_seed(0)
    model = cls(cfg)
    model.reset_parameters()
    model.save_pretrained(folder)
    xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt").save_pretrained(folder)
    return folder


def run_xlmlib(*args, cwd) -> str:
    """`xlmlib ARGS...` in a fresh process on this checkout; its stdout, or a failed assertion with stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "xlmlib.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, check=False, timeout=600)
    assert done.returncode == 0, f"xlmlib {args[0]} failed:\n{done.stderr[-3000:]}"
    return done.stdout
