"""The `xlmlib translate` and `xlmlib train-mt` verbs (registered in cli.VERBS)."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager


def configure_translate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="Translator folder or original XLM MT .pth (codes*/vocab* beside) (required)")
    p.add_argument("--src", default=None,
                   help="source language code (default: none; required by models with language embeddings)")
    p.add_argument("--tgt", default=None,
                   help="target language code (default: none; required by models with language embeddings)")
    p.add_argument("--beam", type=int, default=1, help="beam size; 1 is greedy decoding, as the original (default: 1)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default: 32)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="default: int(1.5 * longest source of the batch + 10) slots, as the original")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search length penalty, as the original's (default: 1.0)")
    p.add_argument("--early-stopping", action="store_true",
                   help="the original's early stopping of beam search (default: off)")
    p.add_argument("--input", default=None, help="text file, one sentence per line (default: stdin)")
    p.add_argument("--output", default=None, help="where to write translations (default: stdout)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto: CUDA when present (default: auto)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar on --input files (default: show it)")
    p.add_argument("--no-truncation", action="store_true",
                   help="stop at a line longer than the model takes, keeping the lines before it (default: cut "
                        "it, with a warning)")


@contextmanager
def _lines(path: str | None):
    """(lines, count or None): stdin streams; a file is counted first so the progress bar has a total."""
    if path is None:
        yield sys.stdin, None
        return
    with open(path, encoding="utf-8") as fh:
        total = sum(1 for _ in fh)
    with open(path, encoding="utf-8") as fh:
        yield fh, total


@contextmanager
def _sink(path: str | None):
    if path is None:
        yield sys.stdout
        return
    from ..atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        yield fh


def run_translate(args) -> int:
    from ..api import InputTooLong, resolve_device
    from .translate import iter_translate, load_translator

    model, tok = load_translator(args.model, device=resolve_device(args.device))
    too_long = None
    with _lines(args.input) as (lines, total), _sink(args.output) as out:
        bar = None
        if total is not None and args.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="translate", unit="line", file=sys.stderr)
        try:
            for text in iter_translate(model, tok, lines, src_lang=args.src, tgt_lang=args.tgt, num_beams=args.beam,
                                       batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                       length_penalty=args.length_penalty, early_stopping=args.early_stopping,
                                       truncation=not args.no_truncation):
                out.write(text + "\n")
                out.flush()  # streaming: each window's lines appear as soon as they are done
                if bar is not None:
                    bar.update(1)
        except InputTooLong as err:  # the lines before it are kept: the output is written, then the error said
            too_long = err
        if bar is not None:
            bar.close()
    if too_long is not None:
        where = args.input or "stdin"
        kept = f"; {args.output or 'the output'} holds the {too_long.index} line(s) before it" if too_long.index else ""
        raise ValueError(f"{where}:{too_long.index + 1}: the line has {too_long.n_tokens} tokens; the model takes at "
                         f"most {too_long.limit} (leave out --no-truncation to cut it){kept}")
    return 0


def configure_train_mt(p: argparse.ArgumentParser) -> None:
    from ..cli.flags import add_config_args, add_run_args
    from ..train.config import MTConfig

    add_config_args(p, MTConfig)
    add_run_args(p)


def run_train_mt(args) -> int:
    from ..cli.flags import config_of
    from ..train.config import MTConfig
    from .train import run_train_mt as run

    records = run(config_of(args, MTConfig), resume=args.resume, device=args.device)
    last = records[-1] if records else {}
    scores = " ".join(f"{k} {v}" for k, v in last.items() if k.startswith(("bleu_", "exact_", "words_")))
    print(f"step {last.get('step', 0)}: loss {last.get('loss', float('nan')):.4f} {scores}".rstrip())
    return 0
