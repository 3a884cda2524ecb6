"""The verbs that use a model or a checkpoint as it is: info, fill-mask, embed, generate, convert, trim-vocab;
and the --model/--tokenizer/--lang/--device flags and loading that the inference verbs share."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub import DEFAULT_MODEL
from .flags import comma_list


def configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint file (also a training checkpoint.pt) or hub name")


def run_info(args) -> int:
    from ..checkpoint.load import read_checkpoint

    ckpt = read_checkpoint(args.src)
    cfg = ckpt.config
    n_params = sum(t.numel() for t in ckpt.state.values())
    print(f"source:      {ckpt.source}")
    print(f"format:      {ckpt.format}")
    print(f"layers:      {cfg.n_layers} x {cfg.dim} (heads {cfg.n_heads}, ffn {cfg.ffn_dim}, "
          f"{'pre' if cfg.pre_norm else 'post'}-LayerNorm)")
    print(f"vocabulary:  {cfg.vocab_size}{_trimmed_from(ckpt.source)}")
    print(f"parameters:  {n_params:,}")
    weights = Path(ckpt.source) / "model.safetensors"
    if weights.is_file():
        print(f"file size:   {weights.stat().st_size:,} bytes ({weights.name})")
    langs = ", ".join(cfg.langs) if cfg.langs else "-"
    print(f"languages:   {langs} ({'language embeddings' if cfg.has_lang_emb else 'no language embeddings'})")
    if ckpt.task:
        print(f"task:        {ckpt.task}{_labels_of(ckpt)}")
    if ckpt.training:
        _print_training(ckpt.training, args.src)
    return 0


def _labels_of(ckpt) -> str:
    """The classes of a classifier checkpoint, for info ("" for other heads)."""
    from ..tasks import task_class

    try:
        cls = task_class(ckpt.task)
    except ValueError:
        return ""
    if cls.task not in ("sequence-classification", "token-classification"):
        return ""
    names = ", ".join(ckpt.config.labels) if ckpt.config.labels else "unnamed"
    return f" ({ckpt.config.num_labels} labels: {names})"


def _trimmed_from(source: str) -> str:
    """What a trimmed folder's trim.json says of the sizes before trimming, for info."""
    import json

    from ..trim import REPORT_FILE

    record = Path(source) / REPORT_FILE
    if not record.is_file():
        return ""
    r = json.loads(record.read_text(encoding="utf-8"))
    before = f", {r['params_before']:,} parameters" if r.get("params_before") else ""
    if "dropped_rate" in r:  # dropped pieces fall back to kept ones; unk_rate is measured after the trim
        rates = (f"{100 * r['dropped_rate']:.1f}% of the corpus used dropped pieces, "
                 f"{100 * r['unk_rate']:.1f}% is <unk> after")
    else:  # trim.json of the old form, where every dropped piece became <unk>
        rates = f"{100 * r['unk_rate']:.1f}% of the corpus became <unk>"
    return f" (trimmed from {r['vocab_before']:,}{before}; {rates})"


def _print_training(t: dict, src: str) -> None:
    """What a training checkpoint resumes: the verb is inferred from the config it holds."""
    verb = "finetune" if "task" in t else "train-mt" if "mt_steps" in t else "pretrain"
    done = t["step"] >= t.get("steps", t["step"] + 1)
    print(f"training:    step {t['step']} of {t.get('steps', '?')}"
          + (" (finished)" if done else "") + f", {verb} {t.get('objective') or t.get('task') or ''}".rstrip())
    print(f"             lr {t.get('lr')}, batch size {t.get('batch_size')}")
    out = t.get("out") or str(Path(src).parent)
    print(f"resume:      xlmlib {verb} --out {out} ... --resume  (with the options of the original run)")


def model_args(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
    if default:
        p.add_argument("--model", default=default, help=f"model folder, checkpoint file or hub name (default: "
                       f"{default}, the small model shipped with xlmlib)")
    else:
        p.add_argument("--model", required=True, help="model folder, checkpoint file or hub name (required)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer folder, .model file or hub name (default: the tokenizer beside --model)")
    p.add_argument("--lang", default=None,
                   help="language code, e.g. en (default: none; required by models with language embeddings)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto: CUDA when present (default: auto)")


def load_for(args, task: str):
    """(model, tokenizer) for an inference verb: --tokenizer wins over the files beside --model."""
    from ..api import load

    model, tok = load(args.model, task=task, device=args.device)
    if args.tokenizer:
        from ..tokenize import Tokenizer

        tok = Tokenizer.from_pretrained(args.tokenizer)
    if tok is None:
        raise FileNotFoundError(f"no tokenizer files beside {args.model}; pass --tokenizer")
    return model, tok


def configure_fill_mask(p: argparse.ArgumentParser) -> None:
    model_args(p, default=DEFAULT_MODEL)
    p.add_argument("text", help="text with <mask> (XLM-R) or <special1> (XLM)")
    p.add_argument("--top-k", type=int, default=5, help="candidates per mask (default: 5)")
    p.add_argument("--targets", default=None,
                   help="comma-separated words to score instead of the whole vocabulary (default: none)")


def run_fill_mask(args) -> int:
    from ..api import fill_mask

    model, tok = load_for(args, "masked-lm")
    targets = comma_list(args.targets) if args.targets else None
    for k, candidates in enumerate(fill_mask(model, tok, args.text, top_k=args.top_k, lang=args.lang,
                                             targets=targets)):
        print(f"mask {k + 1}:")
        for c in candidates:
            print(f"  {c['score']:.4f}  {c['token']!r:<16} {c['text']}")
    return 0


def configure_embed(p: argparse.ArgumentParser) -> None:
    model_args(p, default=DEFAULT_MODEL)
    p.add_argument("--input", required=True, help="text file, one sentence per line (required)")
    p.add_argument("--output", required=True, help="where to write the vectors, .npy (required)")
    p.add_argument("--pooling", choices=("mean", "cls"), default="mean", help="mean of tokens or first token (default: mean)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default: 32)")
    p.add_argument("--no-normalize", action="store_true", help="keep raw vectors (default: unit length)")
    p.add_argument("--no-truncation", action="store_true",
                   help="fail on a line longer than the model takes (default: cut it, with a warning)")


def run_embed(args) -> int:
    import numpy as np

    from ..api import InputTooLong, embed
    from ..atomic import atomic_path

    model, tok = load_for(args, "encoder")
    with open(args.input, encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh]
    try:
        vectors = embed(model, tok, lines, pooling=args.pooling, normalize=not args.no_normalize,
                        batch_size=args.batch_size, lang=args.lang, truncation=not args.no_truncation).numpy()
    except InputTooLong as err:
        raise ValueError(f"{args.input}:{err.index + 1}: the line has {err.n_tokens} tokens; the model takes at "
                         f"most {err.limit} (leave out --no-truncation to cut it)") from None
    with atomic_path(args.output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)
    print(f"wrote {vectors.shape[0]} vectors of size {vectors.shape[1]} to {args.output}")
    return 0


def configure_generate(p: argparse.ArgumentParser) -> None:
    model_args(p)
    p.add_argument("prompt", help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens to add (default: 20)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding (default: greedy)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest tokens, 0 = all (default: 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    p.add_argument("--num-beams", type=int, default=1, help="beam search width, 1 = no beam (default: 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: none)")


def run_generate(args) -> int:
    from ..api import generate

    model, tok = load_for(args, "causal-lm")
    text = generate(model, tok, args.prompt, lang=args.lang, max_new_tokens=args.max_new_tokens,
                    do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    num_beams=args.num_beams, seed=args.seed)[0]
    print(args.prompt + (" " if text and not text.startswith(" ") else "") + text)
    return 0


def configure_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, fairseq model.pt, XLM .pth, .safetensors file or hub name")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--to", choices=("xlmlib", "hf"), default="xlmlib",
                   help="layout of the written folder (default: xlmlib)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="dtype of the written weights (default: float32)")


def run_convert(args) -> int:
    from ..checkpoint.convert import convert

    diff = convert(args.src, args.dst, to=args.to, dtype=args.dtype)
    print(f"wrote {args.dst} ({args.to}, {args.dtype}); max |difference| of outputs on a probe batch: {diff:.3g}")
    return 0


def configure_trim(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint or hub name (or a tokenizer alone, for a new model)")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--corpus", nargs="+", required=True, help="text files whose pieces to keep, one sentence a line (required)")
    p.add_argument("--max-pieces", type=int, default=None, help="keep only the N most frequent pieces (default: all seen)")
    p.add_argument("--keep", nargs="+", default=(), help="pieces to keep even when the corpus lacks them (default: none)")
    p.add_argument("--lang", default=None, help="language of the corpus for XLM's Moses rules; XLM-R ignores it (default: none)")


def run_trim(args) -> int:
    from ..trim import trim_vocab

    r = trim_vocab(args.src, args.dst, args.corpus, args.max_pieces, args.keep, lang=args.lang)
    sizes = f"; parameters {r.params_before:,} -> {r.params_after:,}, {r.file_bytes:,} bytes" if r.params_before else ""
    print(f"wrote {args.dst}: vocabulary {r.vocab_before:,} -> {r.vocab_after:,}{sizes}; "
          f"{100 * r.dropped_rate:.2f}% of {r.corpus_tokens:,} corpus tokens used a dropped piece; re-encoded, "
          f"{r.corpus_tokens_after:,} tokens, {100 * r.unk_rate:.2f}% of them <unk>")
    return 0
