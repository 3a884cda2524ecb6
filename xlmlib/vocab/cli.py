"""The `xlmlib extend-vocab` verb (a configure / run pair for cli.VERBS)."""

from __future__ import annotations

import argparse

HELP = ("add the pieces a corpus needs to an XLM-R vocabulary (SentencePiece model, token table, tied LM head)\n"
        "  example: xlmlib extend-vocab ./xlmr-base ./xlmr-base-ka --corpus ka.txt --new-pieces 8000 "
        "--reference de.txt en.txt")


def configure_extend_vocab(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="XLM-R model folder, checkpoint or hub name (or a SentencePiece tokenizer alone)")
    p.add_argument("dst", help="new folder to write (must not exist yet)")
    p.add_argument("--corpus", nargs="+", required=True,
                   help="text files in the new languages, one sentence a line (required)")
    p.add_argument("--new-pieces", type=int, default=8000,
                   help="size of the SentencePiece model trained on the corpus; its pieces the model lacks are "
                        "added (default: 8000)")
    p.add_argument("--init", choices=("fvt", "random"), default="fvt",
                   help="rows of the new pieces: fvt, the mean of the rows of the old split; random, the model's "
                        "own initialisation (default: fvt)")
    p.add_argument("--reference", nargs="+", default=(),
                   help="text in the model's old languages: new pieces that change its segmentation are left out "
                        "(default: none, not checked)")
    p.add_argument("--keep-unchanged", type=float, default=0.995,
                   help="share of the held-aside half of --reference that must keep its segmentation; the new "
                        "scores are lowered until it does (default: 0.995)")
    p.add_argument("--score-offset", type=float, default=None,
                   help="added to the new pieces' scores (default: the median old - new score of shared pieces)")
    p.add_argument("--seed", type=int, default=0, help="seed of random rows (default: 0)")


def run_extend_vocab(args) -> int:
    from .extend import extend_vocab

    r = extend_vocab(args.src, args.dst, args.corpus, args.new_pieces, args.init, reference=args.reference,
                     keep_unchanged=args.keep_unchanged, score_offset=args.score_offset, seed=args.seed)
    stable = "" if r.reference_unchanged is None else \
        f"; {100 * r.reference_unchanged:.2f}% of {r.reference_lines:,} reference lines segmented as before"
    print(f"wrote {args.dst}: vocabulary {r.vocab_before:,} -> {r.vocab_after:,}; {r.added_pieces:,} of "
          f"{r.missing_pieces:,} missing pieces added ({r.left_out:,} left out), rows {r.init}; <mask> "
          f"{r.mask_before} -> {r.mask_after}{stable}")
    return 0
