"""`xlmlib` command line. Each verb is a (configure, run) pair in VERBS; errors print one line and exit 1
(the traceback only with --debug)."""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger("xlmlib.cli")


def _configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, checkpoint file or hub name")


def _run_info(args) -> int:
    from .checkpoint.load import read_checkpoint

    ckpt = read_checkpoint(args.src)
    cfg = ckpt.config
    n_params = sum(t.numel() for t in ckpt.state.values())
    print(f"source:      {ckpt.source}")
    print(f"format:      {ckpt.format}")
    print(f"layers:      {cfg.n_layers} x {cfg.dim} (heads {cfg.n_heads}, ffn {cfg.ffn_dim}, "
          f"{'pre' if cfg.pre_norm else 'post'}-LayerNorm)")
    print(f"vocabulary:  {cfg.vocab_size}")
    print(f"parameters:  {n_params:,}")
    langs = ", ".join(cfg.langs) if cfg.langs else "-"
    print(f"languages:   {langs} ({'language embeddings' if cfg.has_lang_emb else 'no language embeddings'})")
    return 0


def _files(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _add_optim_args(p: argparse.ArgumentParser) -> None:
    """Options shared by pretrain and finetune; None means "not given" so a --config recipe value stands."""
    p.add_argument("--config", help="a configs/tasks/*.toml recipe; command-line options override it")
    p.add_argument("--model", help="a preset name (random init) or anything from_pretrained loads")
    p.add_argument("--out", help="output folder: checkpoint.pt, metrics.jsonl, loss.png, model/")
    p.add_argument("--tokenizer", help="tokenizer source, or a word-list .txt (one word per line)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int, help="global batch (all processes and accumulation steps)")
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--schedule", choices=("constant", "linear", "inverse_sqrt"))
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--clip-norm", type=float)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--sharding", choices=("ddp", "fsdp"), help="under torchrun: replicate (ddp) or shard (fsdp)")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: this process's GPU, else cpu)")


_NOT_CONFIG = {"config", "device", "resume", "debug", "verb", "_run"}


def _config(args, cls):
    from .train.config import config_from_dict, load_recipe

    given = {k: v for k, v in vars(args).items() if v is not None and k not in _NOT_CONFIG}
    for key in ("langs", "labels"):
        if isinstance(given.get(key), str):
            given[key] = _files(given[key])
    if args.config:
        cfg = load_recipe(args.config, given)
        if not isinstance(cfg, cls):
            raise ValueError(f"{args.config} is not a recipe for this command")
        return cfg
    return config_from_dict(cls, given)


def _configure_pretrain(p: argparse.ArgumentParser) -> None:
    _add_optim_args(p)
    p.add_argument("--objective", choices=("mlm", "clm", "tlm"))
    p.add_argument("--train", nargs="+", help="one text file or binarized prefix per language")
    p.add_argument("--parallel", nargs=2, metavar=("SRC_FILE", "TGT_FILE"), help="line-aligned pair for tlm")
    p.add_argument("--valid", nargs="+", help="held-out files, as --train (or --parallel for tlm)")
    p.add_argument("--langs", help="comma-separated language codes, in the order of the files, e.g. en,fr")
    p.add_argument("--seq-len", type=int)
    p.add_argument("--mlm-probability", type=float)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")


def _run_pretrain(args) -> int:
    from .train.config import TrainConfig
    from .train.pretrain import run_pretrain

    records = run_pretrain(_config(args, TrainConfig), resume=args.resume, device=args.device)
    if records:
        last = records[-1]
        print(f"step {last['step']}: loss {last.get('loss', float('nan')):.4f}")
    return 0


def _configure_preprocess(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, help="tokenizer source, or a word-list .txt")
    p.add_argument("--out", required=True, help="folder for the binarized corpora (NAME.ids.bin/.offsets.bin/.json)")
    p.add_argument("inputs", nargs="+", help="text files, one sentence per line")


def _run_preprocess(args) -> int:
    from pathlib import Path

    from .train.data import binarize
    from .train.text import load_text_encoder

    encoder = load_text_encoder(args.tokenizer)
    for path in args.inputs:
        prefix = Path(args.out) / Path(path).name
        header = binarize(path, encoder.encode, prefix, vocab_size=encoder.vocab_size)
        print(f"{prefix}: {header['n_sentences']} sentences, {header['n_tokens']} tokens")
    return 0


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    _add_optim_args(p)
    p.add_argument("--task", choices=("sequence", "token"))
    p.add_argument("--train", nargs="+", help="TSV / JSONL (sequence) or CoNLL (token) files")
    p.add_argument("--dev", nargs="+")
    p.add_argument("--test", nargs="+")
    p.add_argument("--labels", help="comma-separated label names in id order (default: sorted from --train)")
    p.add_argument("--lang", help="language of files that do not say it per example")
    p.add_argument("--max-len", type=int)
    p.add_argument("--patience", type=int, help="stop after this many evaluations without a better dev score")


def _run_finetune(args) -> int:
    from .train.config import FinetuneConfig
    from .train.finetune import accuracy_table, run_finetune

    result = run_finetune(_config(args, FinetuneConfig), device=args.device)
    best = result["best"]
    print(f"best dev accuracy {100 * best['accuracy']:.2f}% at step {best['step']}")
    for path, res in result["test"].items():
        print(f"test {path}:")
        print(accuracy_table(res))
    return 0


# verb -> (help with an example, configure(parser), run(args) -> exit code)
VERBS = {
    "info": ("show a checkpoint's architecture, size, languages and format\n  example: xlmlib info ./xlmr-base",
             _configure_info, _run_info),
    "preprocess": (("tokenize text files once into the binarized memory-mapped format\n"
                   "  example: xlmlib preprocess --tokenizer ./xlmr-base --out data/ en.txt fr.txt"),
                   _configure_preprocess, _run_preprocess),
    "pretrain": (("pretrain with MLM, CLM or TLM (runs under torchrun for DDP/FSDP)\n"
                 "  example: xlmlib pretrain --model ./tiny --objective mlm --train data/en.txt data/fr.txt "
                 "--langs en,fr --steps 1000 --batch-size 32 --seq-len 256 --lr 1e-4 --out runs/mlm "
                 "--tokenizer ./tiny"),
                 _configure_pretrain, _run_pretrain),
    "finetune": (("fine-tune a sequence or token classifier and report per-language accuracy\n"
                 "  example: xlmlib finetune --config configs/tasks/xnli.toml --model ./xlmr-base "
                 "--train train.tsv --dev dev.tsv --out runs/xnli"),
                 _configure_finetune, _run_finetune),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlmlib", description="XLM and XLM-R in plain PyTorch")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (help_text, configure, run) in VERBS.items():
        p = sub.add_parser(name, help=help_text.splitlines()[0], description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args._run(args)
    except KeyboardInterrupt:
        print("xlmlib: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"xlmlib {args.verb}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
