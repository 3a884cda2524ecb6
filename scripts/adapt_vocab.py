"""Adapt xlmlib-mini to the Tatoeba languages its vocabulary covers worst, measured (README: Vocabulary extension).

    nice -n 10 env OMP_NUM_THREADS=1 python scripts/adapt_vocab.py --assets ../shared/assets --work runs/adapt

1. choose: the mini's <unk> rate and pieces per word on every language's training split (line i with
   i % 10 != 9); the new languages are the --n-new with the highest <unk> rate among those written with spaces
   between words (>= 2.5 words per line on average; pieces per word means nothing otherwise) and with
   >= 500 training lines.
2. extend: xlmlib.extend_vocab of the mini twice (rows "fvt" and "random"; same pieces), corpus = the new
   languages' training split, reference = the training split of OLD (10 languages the mini was trained on).
3. pretrain: `xlmlib pretrain --model FOLDER`, MLM on the training split of the new and the old languages
   (one language per step, p ~ n^0.7), for every variant (no extension, extension + random rows, extension +
   FVT rows): the same steps, seed and hyperparameters; CPU seconds recorded.
4. evaluate on the held-out lines (i % 10 == 9): pieces per word and <unk> rate (mini vs extended tokenizer),
   share of old-language lines segmented as before, and masked whole-word accuracy: every word of every line
   is masked in turn (all its pieces), and counts as recovered when every piece is the argmax; a word with
   <unk> among its pieces counts as not recovered. The same words for every variant (lines whose words do not
   map one to one onto pieces under every tokenizer are left out, and counted).
Stages are cached in WORK (a finished stage is not run again); the result is WORK/adapt.json and the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xlmlib
from xlmlib import cli
from xlmlib.atomic import write_json, write_text
from xlmlib.vocab.extend import extend_vocab

MINI = Path(__file__).resolve().parents[1] / "xlmlib" / "models" / "xlmlib-mini"
OLD = ("deu", "fra", "spa", "rus", "ara", "hin", "tur", "vie", "ind", "ell")
VARIANTS = ("none", "random", "fvt")


def read(assets: Path, lang: str, held: bool) -> list[str]:
    path = assets / "tatoeba-laser-v1" / f"tatoeba.{lang}-eng.{lang}"
    return [line for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()) if (i % 10 == 9) == held]


def coverage(tok, lines: list[str]) -> dict:
    """Pieces per whitespace word and the share of pieces that are <unk>."""
    ids = [tok.encode(line, add_special_tokens=False) for line in lines]
    n = sum(map(len, ids))
    words = sum(len(line.split()) for line in lines)
    return {"pieces_per_word": n / words, "unk_rate": sum(r.count(tok.unk_id) for r in ids) / n,
            "words_per_line": words / len(lines), "lines": len(lines)}


def choose(assets: Path, n_new: int) -> tuple[list[str], dict]:
    tok = xlmlib.Tokenizer.from_pretrained(MINI)
    langs = sorted(p.suffix[1:] for p in (assets / "tatoeba-laser-v1").glob("tatoeba.*-eng.*") if p.suffix != ".eng")
    table = {lang: coverage(tok, read(assets, lang, held=False)) for lang in langs}
    eligible = [g for g, c in table.items() if c["words_per_line"] >= 2.5 and c["lines"] >= 500 and g not in OLD]
    return sorted(eligible, key=lambda g: -table[g]["unk_rate"])[:n_new], table


def write_split(assets: Path, work: Path, langs) -> dict[str, Path]:
    files = {}
    for lang in langs:
        for held, part in ((False, "train"), (True, "heldout")):
            path = work / "data" / part / f"{part}.{lang}"
            if not path.is_file():
                write_text(path, "".join(line + "\n" for line in read(assets, lang, held)))
            files[f"{part}.{lang}"] = path
    return files


def extend(work: Path, files, new: list[str], new_pieces: int) -> dict:
    reports = {}
    for init in ("random", "fvt"):
        folder = work / f"mini-{init}"
        if not folder.is_dir():
            extend_vocab(MINI, folder, corpus=[files[f"train.{g}"] for g in new], new_pieces=new_pieces,
                         init=init, reference=[files[f"train.{g}"] for g in OLD], seed=0)
        reports[init] = json.loads((folder / "extend.json").read_text())
    return reports


def pretrain(work: Path, files, langs: list[str], args) -> dict:
    runs = {}
    for variant in VARIANTS:
        model = MINI if variant == "none" else work / f"mini-{variant}"
        out = work / "runs" / variant
        if not (out / "model").is_dir():
            start = time.process_time()
            argv = ["pretrain", "--model", str(model), "--tokenizer", str(model), "--objective", "mlm",
                    "--train", *[str(files[f"train.{g}"]) for g in langs], "--langs", ",".join(langs),
                    "--seq-len", "48", "--batch-size", "32", "--steps", str(args.steps), "--lr", str(args.lr),
                    "--warmup-steps", str(args.steps // 10), "--schedule", "linear", "--seed", "0",
                    "--precision", "fp32", "--log-every", "50", "--out", str(out), "--no-progress"]
            if cli.main(argv) != 0:
                raise SystemExit(f"pretrain of {variant} failed")
            write_json(out / "cpu.json", {"cpu_seconds": time.process_time() - start})
        records = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in records if "loss" in r]
        runs[variant] = {"cpu_seconds": json.loads((out / "cpu.json").read_text())["cpu_seconds"],
                         "steps": args.steps, "first_loss": losses[0], "last_loss": statistics.mean(losses[-10:])}
    return runs


def word_groups(tok, line: str) -> list[list[int]] | None:
    """The ids of each whitespace word of the line (a group starts at a piece beginning with ▁), or None when
    the groups do not match the words one to one."""
    groups = []
    for i in tok.encode(line, add_special_tokens=False):
        if tok.id_to_token(i).startswith("\u2581") or not groups:
            groups.append([])
        groups[-1].append(i)
    return groups if len(groups) == len(line.split()) else None


def whole_word_accuracy(model, tok, lines: list[str], batch: int = 256) -> dict:
    """Each word of each line masked in turn; recovered when every piece is the argmax (no <unk> piece)."""
    items = []
    for line in lines:
        groups = word_groups(tok, line)
        for k, target in enumerate(groups):
            ids = [i for j, g in enumerate(groups) for i in ([tok.mask_id] * len(g) if j == k else g)]
            start = 1 + sum(len(g) for g in groups[:k])
            items.append(([tok.bos_id, *ids, tok.eos_id], start, target))
    items.sort(key=lambda item: len(item[0]))  # similar lengths together: little padding
    right = 0
    for b in range(0, len(items), batch):
        chunk = items[b:b + batch]
        ids = torch.full((len(chunk), len(chunk[-1][0])), tok.pad_id)
        chosen = torch.zeros(ids.shape, dtype=torch.bool)
        for r, (x, start, target) in enumerate(chunk):
            ids[r, :len(x)] = torch.tensor(x)
            chosen[r, start:start + len(target)] = True
        with torch.no_grad():  # project only the masked rows onto the vocabulary
            h, _ = model.encode(ids, (ids != tok.pad_id).long())
            best = model.lm_head(h[chosen], model.embed.tokens).argmax(-1).tolist()
        for _, _, target in chunk:
            got, best = best[:len(target)], best[len(target):]
            right += got == target and tok.unk_id not in target
    return {"words": len(items), "accuracy": right / max(len(items), 1)}


def evaluate(work: Path, files, new: list[str]) -> dict:
    toks = {v: xlmlib.Tokenizer.from_pretrained(MINI if v == "none" else work / f"mini-{v}") for v in VARIANTS}
    held = {g: files[f"heldout.{g}"].read_text(encoding="utf-8").splitlines() for g in (*new, *OLD)}
    kept = {g: [line for line in ls if all(word_groups(t, line) is not None for t in toks.values())]
            for g, ls in held.items()}
    out = {"coverage": {v: {g: coverage(t, held[g]) for g in held} for v, t in toks.items() if v != "random"},
           "lines_left_out": {g: len(held[g]) - len(kept[g]) for g in held},
           "old_unchanged": {g: statistics.mean(toks["fvt"].encode(x) == toks["none"].encode(x) for x in held[g])
                             for g in OLD}}
    for stage in ("start", "trained"):
        for v in VARIANTS:
            src = (MINI if v == "none" else work / f"mini-{v}") if stage == "start" else work / "runs" / v / "model"
            model, _ = xlmlib.load(src, task="masked-lm")
            res = {g: whole_word_accuracy(model, toks[v], kept[g]) for g in (*new, *OLD)}
            out.setdefault("whole_word", {}).setdefault(stage, {})[v] = res
    return out


def tables(result: dict, new: list[str]) -> str:
    cov, ww = result["evaluate"]["coverage"], result["evaluate"]["whole_word"]
    rows = ["| held-out text | pieces/word before | after | <unk> before | after |", "|---|---|---|---|---|"]
    for g in (*new, *OLD):
        b, a = cov["none"][g], cov["fvt"][g]
        rows.append(f"| {g} | {b['pieces_per_word']:.2f} | {a['pieces_per_word']:.2f} | "
                    f"{100 * b['unk_rate']:.2f}% | {100 * a['unk_rate']:.2f}% |")
    rows += ["", "| variant | " + " | ".join(new) + " | new (mean) | old 10 (mean) |", "|---" * (len(new) + 3) + "|"]
    for stage in ("start", "trained"):
        for v in VARIANTS:
            acc = {g: r["accuracy"] for g, r in ww[stage][v].items()}
            cells = [f"{100 * acc[g]:.1f}%" for g in new]
            mean_new, mean_old = statistics.mean(acc[g] for g in new), statistics.mean(acc[g] for g in OLD)
            rows.append(f"| {v} ({stage}) | " + " | ".join(cells) + f" | {100 * mean_new:.1f}% | {100 * mean_old:.1f}% |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--n-new", type=int, default=3)
    p.add_argument("--new-pieces", type=int, default=4000)
    p.add_argument("--steps", type=int, default=1800)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    new, table = choose(args.assets, args.n_new)
    files = write_split(args.assets, args.work, [*new, *OLD])
    result = {"new": new, "old": list(OLD), "coverage_train": table,
              "extend": extend(args.work, files, new, args.new_pieces)}
    result["pretrain"] = pretrain(args.work, files, [*new, *OLD], args)
    result["evaluate"] = evaluate(args.work, files, new)
    write_json(args.work / "adapt.json", result)
    print(f"new languages: {', '.join(new)}; old: {', '.join(OLD)}")
    print(json.dumps({k: result[k] for k in ("extend", "pretrain")}, indent=1))
    print(tables(result, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
