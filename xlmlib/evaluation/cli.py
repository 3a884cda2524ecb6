"""The `xlmlib evaluate`, `classify`, `tag` and `mine` verbs (registered in cli.VERBS)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _model_flags(p: argparse.ArgumentParser) -> None:
    from ..cli.models import model_args  # here: the cli package imports this module for its VERBS

    model_args(p)
    p.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    from .run import TASKS

    p.add_argument("model", nargs="?", default=None,
                   help="a fine-tuned model folder, checkpoint or hub name (its tokenizer beside it)")
    p.add_argument("--model", dest="model_option", default=None, metavar="MODEL",
                   help="the same as MODEL, as the other verbs take it (default: none)")
    p.add_argument("--task", required=True, choices=TASKS, help="sequence, token, qa or retrieval (required)")
    p.add_argument("--test", nargs="+", required=True, metavar="LANG=PATH",
                   help="one file per language, e.g. de=test.de.tsv fr=test.fr.tsv; retrieval: de-en=SRC:TGT, two "
                        "line-aligned files (the last ':' separates them) (required)")
    p.add_argument("--out", default=None, help="write the table here as JSON, and a bar chart beside it as .png when "
                   "matplotlib is installed (default: print only)")
    p.add_argument("--margin", choices=("ratio", "distance"), default=None,
                   help="retrieval: margin scoring with k=4 instead of cosine (default: cosine)")
    p.add_argument("--max-len", type=int, default=384, help="qa: tokens per window (default: 384)")
    p.add_argument("--doc-stride", type=int, default=128, help="qa: tokens consecutive windows share (default: 128)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the one beside the model)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto: CUDA when present (default: auto)")
    p.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")


_TASK_CLASS = {"sequence": "sequence-classification", "token": "token-classification", "qa": "question-answering",
               "retrieval": "encoder"}


def run_evaluate(args) -> int:
    from ..cli.models import load_for
    from .run import evaluate, table, write_results

    if args.model and args.model_option and args.model != args.model_option:
        raise ValueError(f"two models given: {args.model} and --model {args.model_option}")
    args.model = args.model or args.model_option
    if not args.model:
        raise ValueError("no model given: xlmlib evaluate MODEL --task TASK --test LANG=PATH ...")
    args.lang = None  # the languages come with the files
    model, tok = load_for(args, _TASK_CLASS[args.task])
    results = evaluate(model, tok, args.task, args.test, batch_size=args.batch_size, margin=args.margin,
                       max_len=args.max_len, doc_stride=args.doc_stride)
    print(table(results))
    if args.out:
        png = write_results(results, args.out)
        print(f"wrote {args.out}" + (f" and {png}" if png else ""))
    return 0


def configure_classify(p: argparse.ArgumentParser) -> None:
    _model_flags(p)
    p.add_argument("text", nargs="?", default=None, help="the text to classify (or --input)")
    p.add_argument("--pair", default=None, help="the pair's second text, with TEXT (default: none, a single text)")
    p.add_argument("--input", default=None,
                   help="a file of texts, one per line; a tab separates a pair's two texts (default: none, TEXT)")


def _texts(args) -> tuple[list[str], list[str] | None]:
    if (args.text is None) == (args.input is None):
        raise ValueError("give a TEXT or --input FILE")
    if args.text is not None:
        return [args.text], None if args.pair is None else [args.pair]
    with open(args.input, encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t", 1) for line in fh if line.strip()]
    if any(len(r) == 2 for r in rows):
        return [r[0] for r in rows], [r[1] if len(r) == 2 else "" for r in rows]
    return [r[0] for r in rows], None


def run_classify(args) -> int:
    from ..cli.models import load_for
    from .predict import classify

    model, tok = load_for(args, "sequence-classification")
    texts, pairs = _texts(args)
    for result in classify(model, tok, texts, pairs, lang=args.lang, batch_size=args.batch_size):
        print(f"{result['label']}\t{result['score']:.4f}")
    return 0


def configure_tag(p: argparse.ArgumentParser) -> None:
    _model_flags(p)
    p.add_argument("text", nargs="?", default=None, help="the text to tag (or --input)")
    p.add_argument("--input", default=None, help="a file of texts, one per line (default: none, TEXT)")


def run_tag(args) -> int:
    from ..cli.models import load_for
    from .predict import tag

    model, tok = load_for(args, "token-classification")
    if (args.text is None) == (args.input is None):
        raise ValueError("give a TEXT or --input FILE")
    if args.input is None:
        texts = [args.text]
    else:
        with open(args.input, encoding="utf-8") as fh:
            texts = [line.rstrip("\n") for line in fh if line.strip()]
    for result in tag(model, tok, texts, lang=args.lang, batch_size=args.batch_size):
        print(" ".join(f"{w}/{label}" for w, label in zip(result["words"], result["labels"])))
        for e in result["entities"]:
            print(f"  {e['type']}\t{e['start']}-{e['end']}\t{e['text']}")
    return 0


def configure_mine(p: argparse.ArgumentParser) -> None:
    _model_flags(p)
    p.add_argument("--src", required=True, help="source sentences, one per line (required)")
    p.add_argument("--tgt", required=True, help="target sentences, one per line (required)")
    p.add_argument("--tgt-lang", default=None, help="the target side's language (default: --lang)")
    p.add_argument("--margin", choices=("ratio", "distance", "none"), default="ratio",
                   help="margin scoring (k nearest neighbours each way) or plain cosine (none) (default: ratio)")
    p.add_argument("-k", type=int, default=4, help="neighbours of the margin (default: 4)")
    p.add_argument("--threshold", type=float, default=None, help="keep pairs scoring at least this (default: all)")
    p.add_argument("--output", default=None, help="TSV of score, src line, tgt line, best first (default: stdout)")


def run_mine(args) -> int:
    from ..atomic import atomic_path
    from ..cli.models import load_for
    from .mining import mine

    model, tok = load_for(args, "encoder")
    src, tgt = (Path(path).read_text(encoding="utf-8").splitlines() for path in (args.src, args.tgt))
    pairs = mine(model, tok, src, tgt, k=args.k, margin=None if args.margin == "none" else args.margin,
                 threshold=args.threshold, src_lang=args.lang, tgt_lang=args.tgt_lang or args.lang,
                 batch_size=args.batch_size)
    lines = [f"{score:.4f}\t{src[i]}\t{tgt[j]}\n" for i, j, score in pairs]
    if args.output is None:
        sys.stdout.writelines(lines)
        return 0
    with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    print(f"wrote {len(lines)} pairs to {args.output}")
    return 0
