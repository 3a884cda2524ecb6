"""Lay out the Tatoeba data of the shipped xlmlib-mini model: the fixed train / held-out split.

    python scripts/mini_data.py ../shared/assets/tatoeba-laser-v1 mini-data

Every language file tatoeba.X-eng.{X,eng} is line-aligned with English. Line i (0-based) with i % 10 == 9
is held out, the rest trains. A training line whose text (either side) is also some held-out line is
dropped too, since Tatoeba repeats English sentences across language pairs and the evaluation must not
see a sentence that was trained on. Writes, under OUT:
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

HELD_OUT_EVERY = 10  # line i is held out when i % 10 == 9


def read_pairs(folder: Path) -> dict[str, list[tuple[str, str]]]:
    pairs = {}
    for x_file in sorted(folder.glob("tatoeba.*-eng.*")):
        lang = x_file.suffix[1:]
        if lang == "eng":
            continue
        eng = x_file.with_suffix(".eng")
        xs = x_file.read_text(encoding="utf-8").splitlines()
        es = eng.read_text(encoding="utf-8").splitlines()
        if len(xs) != len(es):
            raise ValueError(f"{x_file} has {len(xs)} lines but {eng} has {len(es)}")
        pairs[lang] = list(zip(xs, es))
    if not pairs:
        raise FileNotFoundError(f"no tatoeba.X-eng.X files in {folder}")
    return pairs


def split(pairs: dict[str, list[tuple[str, str]]]):
    held = {lang: [p for i, p in enumerate(ps) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1] for lang, ps in pairs.items()}
    seen = {text for ps in held.values() for pair in ps for text in pair}
    train = {lang: [p for i, p in enumerate(ps) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1
                    and p[0] not in seen and p[1] not in seen] for lang, ps in pairs.items()}
    return train, held


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
