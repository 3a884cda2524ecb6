"""Saved model folders and CLI runs, as the tests use them: a tiny random model of either family saved with
save_pretrained beside a real tokenizer from the shared assets (the one builder of saved tiny models), and
the `xlmlib` command run the way a user types it: in this process (cli.main, what the tests use) or, for the
one smoke test of the entry point, in a fresh interpreter."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import torch

import xlmlib

ROOT = Path(__file__).resolve().parents[1]
# Shrinks of the published shapes: 1 layer, width 16, 2 heads, FFN 32; the vocabulary stays the real one.
TINY = {"n_layers": 1, "dim": 16, "n_heads": 2, "ffn_dim": 32}


def tiny_model(cls=xlmlib.MaskedLM, preset: str = "xlm-roberta-base", *, seed: int = 0, **changes):
    """A tiny random `cls` of a preset's family (seeded), `changes` replacing further ModelConfig fields (labels=
    names the classes, and sets their number)."""
    if "labels" in changes:
        changes.setdefault("num_labels", len(changes["labels"]))
    cfg = xlmlib.ModelConfig.from_preset(preset).replace(**{**TINY, **changes})
    torch.manual_seed(seed)
    model = cls(cfg)
    model.reset_parameters()
    return model


def save_tiny_xlmr(folder: Path, assets: Path, cls=xlmlib.MaskedLM, *, format: str = "xlmlib", **changes) -> Path:
    """A tiny XLM-R-shaped model saved beside the real XLM-R SentencePiece tokenizer (seed 0)."""
    tiny_model(cls, **changes).save_pretrained(folder, format=format)
    xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt").save_pretrained(folder)
    return folder


def save_tiny_xlm(folder: Path, assets: Path, cls=xlmlib.MaskedLM, *, release: str = "xnli_15", **changes) -> Path:
    """A tiny XLM of a released vocabulary (XNLI-15: language embeddings) beside its BPE tokenizer (seed 0)."""
    preset = {"xnli_15": "xlm-mlm-xnli15-1024", "enfr": "xlm-mlm-enfr-1024", "ende": "xlm-mlm-ende-1024"}[release]
    tiny_model(cls, preset, **changes).save_pretrained(folder)
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release=release)
    tok.save_pretrained(folder)
    return folder


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(*args, stdin: str | None = None) -> Run:
    """`xlmlib ARGS...` in this process: xlmlib.cli.main with its stdout, stderr (log lines included) and
    exit code, stdin fed from `stdin`."""
    from xlmlib.cli import main

    out, err, before = io.StringIO(), io.StringIO(), sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as done:  # --help, and argparse's usage errors
                code = done.code if isinstance(done.code, int) else 1
    finally:
        sys.stdin = before
    return Run(code, out.getvalue(), err.getvalue())


def run_xlmlib(*args, cwd: Path | None = None) -> str:
    """`xlmlib ARGS...` in this process (in folder `cwd`); its stdout, or a failed assertion with stderr."""
    here = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        done = cli(*args)
    finally:
        os.chdir(here)
    assert done.code == 0, f"xlmlib {args[0]} failed:\n{done.err[-3000:]}"
    return done.out


def run_fresh(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m xlmlib.cli ARGS...` in a fresh interpreter on this checkout: the entry point's smoke test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "xlmlib.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, check=False, timeout=600)
