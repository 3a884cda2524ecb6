"""Lay out the Tatoeba data of the shipped xlmlib-mini model: the fixed train / held-out split.

    python scripts/mini_data.py ../shared/assets/tatoeba-laser-v1 mini-data

Every language file tatoeba.X-eng.{X,eng} is line-aligned with English; the split is xlmlib/tatoeba.py's
(line i with i % 10 == 9 held out; training pairs that repeat a held-out sentence dropped). Writes, under OUT:
  train/mono/train.X       one file per language (X sides, and train.eng: English, each sentence once)
  train/para/x/X-eng.X     the pairs, the X side ...
  train/para/en/X-eng.eng  ... and the English side, line-aligned
  heldout/X-eng.X, heldout/X-eng.eng   the held-out pairs (evaluation only)
  split.json               counts per language
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlmlib.atomic import write_json, write_text
from xlmlib.tatoeba import read_pairs, split


def write_split(out: Path, train, held) -> dict:
    english = list(dict.fromkeys(e for ps in train.values() for _, e in ps))
    files = {out / "train" / "mono" / "train.eng": english}
    for lang in train:
        files[out / "train" / "mono" / f"train.{lang}"] = [x for x, _ in train[lang]]
        files[out / "train" / "para" / "x" / f"{lang}-eng.{lang}"] = [x for x, _ in train[lang]]
        files[out / "train" / "para" / "en" / f"{lang}-eng.eng"] = [e for _, e in train[lang]]
        files[out / "heldout" / f"{lang}-eng.{lang}"] = [x for x, _ in held[lang]]
        files[out / "heldout" / f"{lang}-eng.eng"] = [e for _, e in held[lang]]
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(line + "\n" for line in lines))
    counts = {lang: {"train": len(train[lang]), "heldout": len(held[lang])} for lang in train}
    summary = {"languages": len(train), "train_pairs": sum(c["train"] for c in counts.values()),
               "heldout_pairs": sum(c["heldout"] for c in counts.values()), "english_sentences": len(english),
               "per_language": counts}
    write_json(out / "split.json", summary)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tatoeba", type=Path, help="the tatoeba-laser-v1 folder")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    summary = write_split(args.out, *split(read_pairs(args.tatoeba)))
    print(f"{summary['languages']} languages: {summary['train_pairs']} training pairs, "
          f"{summary['heldout_pairs']} held-out pairs, {summary['english_sentences']} English training sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
