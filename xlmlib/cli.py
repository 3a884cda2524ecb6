"""`xlmlib` command line. Each verb is a (configure, run) pair in VERBS; errors print one line and exit 1
(the traceback only with --debug)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import cli_mt
from .cli_flags import add_config_args, add_run_args, comma_list, config_of
from .hub import DEFAULT_MODEL

logger = logging.getLogger("xlmlib.cli")


def _configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint file (also a training checkpoint.pt) or hub name")


def _run_info(args) -> int:
    from .checkpoint.load import read_checkpoint

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
    from .tasks import task_class

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

    from .trim import REPORT_FILE

    record = Path(source) / REPORT_FILE
    if not record.is_file():
        return ""
    r = json.loads(record.read_text(encoding="utf-8"))
    before = f", {r['params_before']:,} parameters" if r.get("params_before") else ""
    return f" (trimmed from {r['vocab_before']:,}{before}; {100 * r['unk_rate']:.1f}% of the corpus became <unk>)"


def _print_training(t: dict, src: str) -> None:
    """What a training checkpoint resumes: the verb is inferred from the config it holds."""
    verb = "finetune" if "task" in t else "train-mt" if "mt_steps" in t else "pretrain"
    done = t["step"] >= t.get("steps", t["step"] + 1)
    print(f"training:    step {t['step']} of {t.get('steps', '?')}"
          + (" (finished)" if done else "") + f", {verb} {t.get('objective') or t.get('task') or ''}".rstrip())
    print(f"             lr {t.get('lr')}, batch size {t.get('batch_size')}")
    out = t.get("out") or str(Path(src).parent)
    print(f"resume:      xlmlib {verb} --out {out} ... --resume  (with the options of the original run)")


def _model_args(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
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


def _load(args, task: str):
    """(model, tokenizer) for an inference verb: --tokenizer wins over the files beside --model."""
    from .api import load

    model, tok = load(args.model, task=task, device=args.device)
    if args.tokenizer:
        from .tokenize import Tokenizer

        tok = Tokenizer.from_pretrained(args.tokenizer)
    if tok is None:
        raise FileNotFoundError(f"no tokenizer files beside {args.model}; pass --tokenizer")
    return model, tok


def _configure_fill_mask(p: argparse.ArgumentParser) -> None:
    _model_args(p, default=DEFAULT_MODEL)
    p.add_argument("text", help="text with <mask> (XLM-R) or <special1> (XLM)")
    p.add_argument("--top-k", type=int, default=5, help="candidates per mask (default: 5)")
    p.add_argument("--targets", default=None,
                   help="comma-separated words to score instead of the whole vocabulary (default: none)")


def _run_fill_mask(args) -> int:
    from .api import fill_mask

    model, tok = _load(args, "masked-lm")
    targets = comma_list(args.targets) if args.targets else None
    for k, candidates in enumerate(fill_mask(model, tok, args.text, top_k=args.top_k, lang=args.lang,
                                             targets=targets)):
        print(f"mask {k + 1}:")
        for c in candidates:
            print(f"  {c['score']:.4f}  {c['token']!r:<16} {c['text']}")
    return 0


def _configure_embed(p: argparse.ArgumentParser) -> None:
    _model_args(p, default=DEFAULT_MODEL)
    p.add_argument("--input", required=True, help="text file, one sentence per line (required)")
    p.add_argument("--output", required=True, help="where to write the vectors, .npy (required)")
    p.add_argument("--pooling", choices=("mean", "cls"), default="mean", help="mean of tokens or first token (default: mean)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default: 32)")
    p.add_argument("--no-normalize", action="store_true", help="keep raw vectors (default: unit length)")
    p.add_argument("--no-truncation", action="store_true",
                   help="fail on a line longer than the model takes (default: cut it, with a warning)")


def _run_embed(args) -> int:
    import numpy as np

    from .api import InputTooLong, embed
    from .atomic import atomic_path

    model, tok = _load(args, "encoder")
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


def _configure_generate(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("prompt", help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens to add (default: 20)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding (default: greedy)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest tokens, 0 = all (default: 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    p.add_argument("--num-beams", type=int, default=1, help="beam search width, 1 = no beam (default: 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: none)")


def _run_generate(args) -> int:
    from .api import generate

    model, tok = _load(args, "causal-lm")
    text = generate(model, tok, args.prompt, lang=args.lang, max_new_tokens=args.max_new_tokens,
                    do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    num_beams=args.num_beams, seed=args.seed)[0]
    print(args.prompt + (" " if text and not text.startswith(" ") else "") + text)
    return 0


def _configure_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, fairseq model.pt, XLM .pth, .safetensors file or hub name")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--to", choices=("xlmlib", "hf"), default="xlmlib",
                   help="layout of the written folder (default: xlmlib)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="dtype of the written weights (default: float32)")


def _run_convert(args) -> int:
    from .checkpoint.convert import convert

    diff = convert(args.src, args.dst, to=args.to, dtype=args.dtype)
    print(f"wrote {args.dst} ({args.to}, {args.dtype}); max |difference| of outputs on a probe batch: {diff:.3g}")
    return 0


def _configure_trim(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint or hub name (or a tokenizer alone, for a new model)")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--corpus", nargs="+", required=True, help="text files whose pieces to keep, one sentence a line (required)")
    p.add_argument("--max-pieces", type=int, default=None, help="keep only the N most frequent pieces (default: all seen)")
    p.add_argument("--keep", nargs="+", default=(), help="pieces to keep even when the corpus lacks them (default: none)")
    p.add_argument("--lang", default=None, help="language of the corpus for XLM's Moses rules; XLM-R ignores it (default: none)")


def _run_trim(args) -> int:
    from .trim import trim_vocab

    r = trim_vocab(args.src, args.dst, args.corpus, args.max_pieces, args.keep, lang=args.lang)
    sizes = f"; parameters {r.params_before:,} -> {r.params_after:,}, {r.file_bytes:,} bytes" if r.params_before else ""
    print(f"wrote {args.dst}: vocabulary {r.vocab_before:,} -> {r.vocab_after:,}{sizes}; "
          f"{100 * r.unk_rate:.2f}% of {r.corpus_tokens:,} corpus tokens become <unk>")
    return 0


def _configure_pretrain(p: argparse.ArgumentParser) -> None:
    from .train.config import TrainConfig

    add_config_args(p, TrainConfig)
    add_run_args(p)


def _run_pretrain(args) -> int:
    from .train.config import TrainConfig
    from .train.pretrain import run_pretrain

    records = run_pretrain(config_of(args, TrainConfig), resume=args.resume, device=args.device)
    if records:
        last = records[-1]
        print(f"step {last['step']}: loss {last.get('loss', float('nan')):.4f}")
    return 0


def _configure_preprocess(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, help="tokenizer source, or a word-list .txt (required)")
    p.add_argument("--out", required=True,
                   help="folder for the binarized corpora, NAME.ids.bin/.offsets.bin/.json (required)")
    p.add_argument("--langs", help="comma-separated language codes, one per input file, e.g. en,fr (XLM's "
                   "tokenization rules depend on the language; default: the tokenizer's default language)")
    p.add_argument("inputs", nargs="+", help="text files, one sentence per line")


def _run_preprocess(args) -> int:
    import functools
    from pathlib import Path

    from .train.data import binarize
    from .train.text import load_text_encoder

    langs = comma_list(args.langs) if args.langs else [None] * len(args.inputs)
    if len(langs) != len(args.inputs):
        raise ValueError(f"{len(args.inputs)} input files but {len(langs)} --langs; give one language per file")
    encoder = load_text_encoder(args.tokenizer)
    for path, lang in zip(args.inputs, langs):
        prefix = Path(args.out) / Path(path).stem
        header = binarize(path, functools.partial(encoder.encode, lang=lang), prefix, vocab_size=encoder.vocab_size)
        print(f"{prefix}: {header['n_sentences']} sentences, {header['n_tokens']} tokens")
    return 0


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    from .train.config import FinetuneConfig

    add_config_args(p, FinetuneConfig)
    add_run_args(p)


def _run_finetune(args) -> int:
    from .train.config import FinetuneConfig
    from .train.finetune import accuracy_table, run_finetune

    cfg = config_of(args, FinetuneConfig)
    result = run_finetune(cfg, resume=args.resume, device=args.device)
    best = result["best"]
    if best["accuracy"] is None:
        print(f"no dev data (--dev): no model selection; {Path(cfg.out, 'best')} holds the model after step "
              f"{best['step']}")
    else:
        print(f"best dev accuracy {100 * best['accuracy']:.2f}% at step {best['step']} (model in "
              f"{Path(cfg.out, 'best')})")
    for path, res in result["test"].items():
        print(f"test {path}:")
        print(accuracy_table(res))
    return 0


# verb -> (help with an example, configure(parser), run(args) -> exit code)
VERBS = {
    "info": ("show a checkpoint's architecture, size, languages and format\n  example: xlmlib info ./xlmr-base",
             _configure_info, _run_info),
    "fill-mask": (("rank candidates for every mask in a text\n"
                  "  example: xlmlib fill-mask --model ./xlmr-base \"Paris is the <mask> of France.\""),
                  _configure_fill_mask, _run_fill_mask),
    "embed": (("write one sentence vector per input line to a .npy file\n"
              "  example: xlmlib embed --model ./xlmr-base --input sents.txt --output vectors.npy"),
              _configure_embed, _run_embed),
    "generate": (("continue a prompt with a causal LM (KV cache; greedy, sampling or beam search)\n"
                 "  example: xlmlib generate --model ./xlm-clm-enfr-1024 --lang en \"The weather is\""),
                 _configure_generate, _run_generate),
    "convert": (("convert a checkpoint (fairseq, original XLM, HF, xlmlib) to safetensors, then verify it\n"
                 "  example: xlmlib convert xlmr.large/model.pt ./xlmr-large --to hf --dtype bfloat16"),
                _configure_convert, _run_convert),
    "trim-vocab": (("keep only the vocabulary a corpus uses (token table, tied LM projection and bias sliced)\n"
                    "  example: xlmlib trim-vocab ./xlmr-base ./xlmr-base-de --corpus de.txt --max-pieces 30000"),
                   _configure_trim, _run_trim),
    "preprocess": (("tokenize text files once into the binarized memory-mapped format\n"
                   "  example: xlmlib preprocess --tokenizer ./xlmr-base --out data/ en.txt fr.txt"),
                   _configure_preprocess, _run_preprocess),
    "pretrain": (("pretrain with MLM, CLM or TLM (runs under torchrun for DDP/FSDP)\n"
                 "  example: xlmlib pretrain --model xlmlib-mini --objective mlm --train data/en.txt data/fr.txt "
                 "--langs en,fr --steps 1000 --batch-size 32 --seq-len 256 --lr 1e-4 --out runs/mlm\n"
                 "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 _configure_pretrain, _run_pretrain),
    "finetune": (("fine-tune a sequence or token classifier and report per-language accuracy\n"
                 "  example: xlmlib finetune --config configs/tasks/xnli.toml --model xlmlib-mini "
                 "--train train.tsv --dev dev.tsv --out runs/xnli\n"
                 "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 _configure_finetune, _run_finetune),
    "translate": (("translate lines with an XLM encoder-decoder (greedy or beam search, as the original)\n"
                   "  example: xlmlib translate --model ./mt-deen --src de --tgt en --beam 5 < in.de > out.en"),
                  cli_mt.configure_translate, cli_mt.run_translate),
    "train-mt": (("train translation: supervised (mt), denoising (ae), back-translation (bt); BLEU on --valid\n"
                  "  example: xlmlib train-mt --model xlmlib-mini --langs de,en --parallel train.de train.en "
                  "--mt-steps de-en --valid valid.de valid.en --steps 2000 --out runs/mt\n"
                  "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 cli_mt.configure_train_mt, cli_mt.run_train_mt),
}


TRAINING_VERBS = ("pretrain", "finetune", "train-mt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlmlib", description="XLM and XLM-R in plain PyTorch")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging (default: off)")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (help_text, configure, run) in VERBS.items():
        p = sub.add_parser(name, help=help_text.splitlines()[0], description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def _interrupted(err, argv: list[str]) -> str:
    """What Ctrl-C tells the user: where the state is, and the command that continues the run."""
    import shlex

    from .train.trainer import TrainingInterrupted

    if not isinstance(err, TrainingInterrupted):
        return "xlmlib: interrupted"
    again = "xlmlib " + shlex.join([a for a in argv if a != "--resume"] + ["--resume"])
    if err.checkpoint is not None:
        return f"xlmlib: interrupted at step {err.step}; saved {err.checkpoint}\ncontinue with: {again}"
    if err.last is not None:
        return f"xlmlib: interrupted at step {err.step}; the last checkpoint is {err.last}\ncontinue with: {again}"
    return f"xlmlib: interrupted at step {err.step}; no checkpoint was written yet"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if args.verb in TRAINING_VERBS and not args.debug:  # long runs say what they read and where they write
        logging.getLogger("xlmlib.train").setLevel(logging.INFO)
    try:
        return args._run(args)
    except KeyboardInterrupt as err:
        print(_interrupted(err, [str(a) for a in argv]), file=sys.stderr)
        return 130
    except Exception as err:  # one clear line for users; --debug shows the traceback
        if args.debug:
            raise
        print(f"xlmlib {args.verb}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
