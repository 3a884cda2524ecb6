"""Tatoeba retrieval of the shipped xlmlib-mini through `xlmlib.evaluate`, on the held-out split only (line i
with i % 10 == 9, xlmlib/tatoeba.py: the mini trained on the rest), for all 112 languages paired with English:
accuracy of the nearest neighbour X→en and en→X by cosine and by margin (ratio, k = 4), beside chance and a
randomly initialised twin (the mini's config, seed 0), which tells how much shared names, numbers and
punctuation alone find.

    OMP_NUM_THREADS=1 python scripts/tatoeba_retrieval.py --out runs/tatoeba [--assets ../shared/assets]

Writes OUT/heldout/{X}.txt + OUT/heldout/{X}.eng.txt (the files `xlmlib evaluate --task retrieval` reads, also
from the command line), OUT/results.json, and prints the README's Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_ASSETS = ROOT.parent / "shared" / "assets"
SHOWN = ("deu", "fra", "spa", "rus", "cmn", "ara")


def write_heldout(assets: Path, out: Path) -> dict[str, str]:
    """{X-eng: "X_FILE:ENG_FILE"}: the held-out pairs of every language, as retrieval test specs."""
    from xlmlib.atomic import write_text
    from xlmlib.tatoeba import read_pairs, split

    out.mkdir(parents=True, exist_ok=True)
    specs = {}
    for lang, pairs in split(read_pairs(assets / "tatoeba-laser-v1"))[1].items():
        x, en = out / f"{lang}.txt", out / f"{lang}.eng.txt"
        write_text(x, "".join(p[0] + "\n" for p in pairs))
        write_text(en, "".join(p[1] + "\n" for p in pairs))
        specs[f"{lang}-eng"] = f"{x}:{en}"
    return specs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", default=os.environ.get("XLMLIB_ASSETS", str(DEFAULT_ASSETS)))
    p.add_argument("--out", default="runs/tatoeba")
    args = p.parse_args(argv)
    from eval_mini import random_twin

    import xlmlib
    from xlmlib.atomic import write_json

    out = Path(args.out)
    specs = write_heldout(Path(args.assets), out / "heldout")
    mini, tok = xlmlib.load("xlmlib-mini", task="encoder")
    twin = random_twin(mini)
    start = time.perf_counter()
    results = {(who, margin or "cosine"): xlmlib.evaluate(model, tok, "retrieval", specs, margin=margin,
                                                           progress=False)
               for who, model in (("xlmlib-mini", mini), ("random twin", twin)) for margin in (None, "ratio")}
    seconds = time.perf_counter() - start
    n = {lang: r["n"] for lang, r in results["xlmlib-mini", "cosine"]["per_lang"].items()}
    write_json(out / "results.json", {f"{who} / {m}": r for (who, m), r in results.items()})
    print("| held-out pairs (languages) | model | cosine X→en | margin X→en | cosine en→X | margin en→X | chance |")
    print("|---|---|---|---|---|---|---|")
    rows = [(f"{lang} ({n[lang + '-eng']})", [f"{lang}-eng"]) for lang in SHOWN]
    rows.append((f"all 112, mean ({sum(n.values()):,})", list(n)))
    for name, keys in rows:
        for who in ("xlmlib-mini", "random twin"):
            cells = [sum(results[who, m]["per_lang"][k][d] for k in keys) / len(keys)
                     for d in ("forward", "backward") for m in ("cosine", "ratio")]
            chance = sum(1 / n[k] for k in keys) / len(keys)
            print(f"| {name} | {who} | " + " | ".join(f"{100 * c:.1f}" for c in cells) + f" | {100 * chance:.1f} |")
    print(f"\n{len(n)} languages, 4 runs of xlmlib.evaluate in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
