"""Benchmarks, side by side with transformers. One subcommand per case; add a case as a subparser
whose handler lives in its own module (scripts/bench_<case>.py), so cases merge independently.

    python scripts/bench.py tokenizers [--sentences 24000] [--repeats 5] [--out bench-results/tokenizers.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _tokenizers(args: argparse.Namespace) -> int:
    import bench_tokenizers

    return bench_tokenizers.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="case", required=True)
    tok = sub.add_parser("tokenizers", help="XLM and XLM-R tokenizers vs transformers (sentences/s)")
    tok.add_argument("--assets", type=Path, default=None, help="shared assets folder (default ../shared/assets)")
    tok.add_argument("--sentences", type=int, default=24000, help="Tatoeba sentences per case (>= 20000)")
    tok.add_argument("--repeats", type=int, default=5, help="timed runs per tokenizer (median reported)")
    tok.add_argument("--batch-size", type=int, default=64)
    tok.add_argument("--out", type=Path, default=Path("bench-results/tokenizers.md"), help="Markdown table written here")
    tok.set_defaults(handler=_tokenizers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
