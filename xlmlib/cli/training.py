"""The training verbs pretrain and finetune, and preprocess (text to the binarized format pretraining reads);
their flags come from the config dataclasses (flags.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import add_config_args, add_run_args, comma_list, config_of


def configure_pretrain(p: argparse.ArgumentParser) -> None:
    from ..train.config import TrainConfig

    add_config_args(p, TrainConfig)
    add_run_args(p)


def run_pretrain(args) -> int:
    from ..train.config import TrainConfig
    from ..train.pretrain import run_pretrain

    records = run_pretrain(config_of(args, TrainConfig), resume=args.resume, device=args.device)
    if records:
        last = records[-1]
        print(f"step {last['step']}: loss {last.get('loss', float('nan')):.4f}")
    return 0


def configure_preprocess(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, help="tokenizer source, or a word-list .txt (required)")
    p.add_argument("--out", required=True,
                   help="folder for the binarized corpora, NAME.ids.bin/.offsets.bin/.json (required)")
    p.add_argument("--langs", help="comma-separated language codes, one per input file, e.g. en,fr (XLM's "
                   "tokenization rules depend on the language; default: the tokenizer's default language)")
    p.add_argument("inputs", nargs="+", help="text files, one sentence per line")


def run_preprocess(args) -> int:
    import functools
    from pathlib import Path

    from ..train.data import binarize
    from ..train.text import load_text_encoder

    langs = comma_list(args.langs) if args.langs else [None] * len(args.inputs)
    if len(langs) != len(args.inputs):
        raise ValueError(f"{len(args.inputs)} input files but {len(langs)} --langs; give one language per file")
    encoder = load_text_encoder(args.tokenizer)
    for path, lang in zip(args.inputs, langs):
        prefix = Path(args.out) / Path(path).stem
        header = binarize(path, functools.partial(encoder.encode, lang=lang), prefix, vocab_size=encoder.vocab_size)
        print(f"{prefix}: {header['n_sentences']} sentences, {header['n_tokens']} tokens")
    return 0


def configure_finetune(p: argparse.ArgumentParser) -> None:
    from ..train.config import FinetuneConfig

    add_config_args(p, FinetuneConfig)
    add_run_args(p)


def run_finetune(args) -> int:
    from ..train.config import FinetuneConfig
    from ..train.finetune import accuracy_table, run_finetune

    cfg = config_of(args, FinetuneConfig)
    result = run_finetune(cfg, resume=args.resume, device=args.device)
    best = result["best"]
    if best["score"] is None:
        print(f"no dev data (--dev): no model selection; {Path(cfg.out, 'best')} holds the model after step "
              f"{best['step']}")
    else:
        print(f"best dev {best['metric']} {100 * best['score']:.2f}% at step {best['step']} (model in "
              f"{Path(cfg.out, 'best')})")
    for path, res in result["test"].items():
        print(f"test {path}:")
        if "exact_match" in res:  # QA: EM / F1 in percent, as the official scripts give them
            print(f"  exact match {res['exact_match']:.2f}, F1 {res['f1']:.2f} ({res['n']} questions)")
        else:
            print(accuracy_table(res))
    if len(result["test"]) > 1:  # the languages side by side, as `xlmlib evaluate` prints them
        from ..evaluation.run import table

        print(table(result["evaluation"]))
    return 0
