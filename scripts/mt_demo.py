"""Supervised MT demonstration: fine-tune a Translator initialised from a pretrained encoder (e.g. the
shipped xlmlib-mini) on the Tatoeba training split of one pair and report BLEU on the held-out split next
to a copy-the-source baseline.

Split: xlmlib/tatoeba.py's (line i of the LASER Tatoeba files held out when i % 10 == 9; the pair's other
lines train).
BLEU: sacrebleu corpus BLEU (default 13a tokenization) of greedy translations against the raw reference
lines; the baseline scores the untranslated source lines against the same references.

    python scripts/mt_demo.py --model xlmlib/models/xlmlib-mini --pair deu-eng --out runs/mt-demo

Writes OUT/results.json and OUT/run (metrics.jsonl, the model) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ASSETS = ROOT.parent / "shared" / "assets"


def split(assets: Path, pair: str, out: Path) -> dict[str, Path]:
    """train/held-out files for both sides of `pair` (e.g. deu-eng: deu is the source)."""
    from xlmlib.tatoeba import held_out_lines

    src, tgt = pair.split("-")
    files = {}
    for side in (src, tgt):
        lines = (assets / "tatoeba-laser-v1" / f"tatoeba.{pair}.{side}").read_text(encoding="utf-8").splitlines()
        for name, held in (("train", False), ("heldout", True)):
            path = out / "data" / f"{name}.{side}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(x + "\n" for x in held_out_lines(lines, held)), encoding="utf-8")
            files[f"{name}.{side}"] = path
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="encoder to start from (folder or checkpoint), or a Translator")
    p.add_argument("--tokenizer", default="", help="default: the tokenizer beside the model")
    p.add_argument("--pair", default="deu-eng", help="a Tatoeba pair, source first (deu-eng translates deu to eng)")
    p.add_argument("--assets", default=os.environ.get("XLMLIB_ASSETS", str(DEFAULT_ASSETS)))
    p.add_argument("--out", default="runs/mt-demo")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--eval-every", type=int, default=500)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    import sacrebleu

    from xlmlib.mt.train import run_train_mt
    from xlmlib.train.config import MTConfig

    out, (src, tgt) = Path(args.out), args.pair.split("-")
    files = split(Path(args.assets), args.pair, out)
    cfg = MTConfig(model=args.model, tokenizer=args.tokenizer, out=str(out / "run"), langs=(src, tgt),
                   parallel=(str(files[f"train.{src}"]), str(files[f"train.{tgt}"])),
                   valid=(str(files[f"heldout.{src}"]), str(files[f"heldout.{tgt}"])), mt_steps=(f"{src}-{tgt}",),
                   steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(200, args.steps // 10),
                   schedule="linear", eval_every=args.eval_every, log_every=50, progress=False)
    start = time.perf_counter()
    records = run_train_mt(cfg)
    minutes = (time.perf_counter() - start) / 60
    refs = files[f"heldout.{tgt}"].read_text(encoding="utf-8").splitlines()
    sources = files[f"heldout.{src}"].read_text(encoding="utf-8").splitlines()
    copy_bleu = sacrebleu.corpus_bleu(sources, [refs]).score
    copy_exact = sum(s == r for s, r in zip(sources, refs)) / len(refs)
    evals = [r for r in records if f"bleu_{src}-{tgt}" in r]
    result = {"model": args.model, "pair": args.pair, "train_pairs": len(files[f"train.{src}"].read_text(encoding="utf-8").splitlines()),
              "heldout_pairs": len(refs), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
              "minutes": round(minutes, 1), "copy_bleu": round(copy_bleu, 2), "copy_exact": copy_exact,
              "evals": [{k: r[k] for k in ("step", f"bleu_{src}-{tgt}", f"exact_{src}-{tgt}")} for r in evals]}
    from xlmlib.atomic import write_text

    write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    last = evals[-1]
    print(f"| {args.pair} held-out ({len(refs)} pairs) | BLEU | exact match |\n|---|---|---|")
    print(f"| copy the source | {copy_bleu:.2f} | {copy_exact:.3f} |")
    print(f"| fine-tuned, step {last['step']} | {last[f'bleu_{src}-{tgt}']:.2f} | {last[f'exact_{src}-{tgt}']:.3f} |")
    print(f"({result['train_pairs']} training pairs, {args.steps} steps of {args.batch_size}, {minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
