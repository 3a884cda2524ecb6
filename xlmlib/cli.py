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


def _configure_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="model folder, fairseq model.pt, XLM .pth, .safetensors file or hub name")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--to", choices=("xlmlib", "hf"), default="xlmlib", help="layout of the written folder")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="dtype of the written weights")


def _run_convert(args) -> int:
    from .checkpoint.convert import convert

    diff = convert(args.src, args.dst, to=args.to, dtype=args.dtype)
    print(f"wrote {args.dst} ({args.to}, {args.dtype}); max |difference| of outputs on a probe batch: {diff:.3g}")
    return 0


# verb -> (help with an example, configure(parser), run(args) -> exit code)
VERBS = {
    "info": ("show a checkpoint's architecture, size, languages and format\n  example: xlmlib info ./xlmr-base",
             _configure_info, _run_info),
    "convert": ("convert a checkpoint (fairseq, original XLM, HF, xlmlib) to safetensors, then verify it\n"
                "  example: xlmlib convert xlmr.large/model.pt ./xlmr-large --to hf --dtype bfloat16",
                _configure_convert, _run_convert),
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
    except Exception as err:  # noqa: BLE001 - one clear line for users; --debug shows the traceback
        if args.debug:
            raise
        print(f"xlmlib {args.verb}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
