"""The Tatoeba files of the shared assets (LASER's tatoeba.X-eng.{X,eng}, line-aligned with English) and the
fixed split of xlmlib-mini: line i (0-based) with i % 10 == 9 is held out, the rest trains. A training pair
whose text (either side) is also some held-out line is dropped too, since Tatoeba repeats English sentences
across language pairs and an evaluation must not see a sentence that was trained on. The model card, the
scripts that built and measured the mini, and the tests read the split from here, so it exists once.
"""

from __future__ import annotations

import os
from pathlib import Path

HELD_OUT_EVERY = 10  # line i is held out when i % 10 == 9


def is_held_out(i: int) -> bool:
    """Whether line i (0-based) of a Tatoeba file is in the held-out split."""
    return i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


def held_out_lines(lines: list[str], held: bool = True) -> list[str]:
    """The held-out lines of one file (held=False: the other lines, before the cross-language filter of split)."""
    return [line for i, line in enumerate(lines) if is_held_out(i) == held]


def read_pairs(folder: str | os.PathLike, langs=None) -> dict[str, list[tuple[str, str]]]:
    """{X: [(X sentence, English sentence), ...]} from the tatoeba.X-eng.{X,eng} files of a folder (every
    language, or those in `langs`); files of different lengths are refused."""
    folder = Path(folder)
    pairs = {}
    for x_file in sorted(folder.glob("tatoeba.*-eng.*")):
        lang = x_file.suffix[1:]
        if lang == "eng" or (langs is not None and lang not in langs):
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
    """(train, held-out) pairs per language, by the module's rule."""
    held = {lang: [p for i, p in enumerate(ps) if is_held_out(i)] for lang, ps in pairs.items()}
    seen = {text for ps in held.values() for pair in ps for text in pair}
    train = {lang: [p for i, p in enumerate(ps) if not is_held_out(i) and p[0] not in seen and p[1] not in seen]
             for lang, ps in pairs.items()}
    return train, held
