"""Write the xlmlib-mini model card (xlmlib/models/xlmlib-mini/README.md) from measured files only:

    python scripts/mini_card.py --eval eval-mini.json --run runs/xlmlib-mini runs/xlmlib-mini-2 \
        --twin runs/xlmlib-mini-mlm runs/xlmlib-mini-mlm-2 --split mini-data/split.json \
        --model xlmlib/models/xlmlib-mini --template scripts/mini_card.md \
        --wall SECONDS SECONDS --twin-wall SECONDS SECONDS

--run / --twin take the run folders of the training stages in order (a stage continues from the previous
stage's model), --wall / --twin-wall their wall-clock seconds.

Every number in the card comes from these inputs (eval_mini.py's JSON, the runs' metrics.jsonl, the split
counts, the shipped folder itself); the prose around them is the template's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xlmlib
from xlmlib.atomic import write_text


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def last_loss(runs: list[Path]) -> tuple[list[int], float]:
    """The steps of each stage, and the mean loss of the last 10 logged steps of the last stage."""
    stages = []
    for run in runs:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        stages.append([r for r in records if "loss" in r])
    tail = stages[-1][-10:]
    return [s[-1]["step"] for s in stages], sum(r["loss"] for r in tail) / len(tail)


def steps_text(steps: list[int]) -> str:
    total = f"{sum(steps):,}"
    return total if len(steps) == 1 else f"{total} ({' + '.join(f'{n:,}' for n in steps)})"


def masked_table(report: dict) -> str:
    rows = ["| held-out text | masked pieces | top-1 | top-5 | unigram top-1 | unigram top-5 |", "|---|---|---|---|---|---|"]
    for name, r in report.items():
        m, u = r["model"], r["unigram"]
        rows.append(f"| {name} | {m['n']:,} | {pct(m['top1'])} | {pct(m['top5'])} | {pct(u['top1'])} | {pct(u['top5'])} |")
    return "\n".join(rows)


def retrieval_table(report: dict) -> str:
    rows = ["| model | X→en | en→X |", "|---|---|---|"]
    for name in ("mlm+tlm", "mlm-only", "random"):
        rows.append(f"| {name} | {pct(report[name]['x_to_en'])} | {pct(report[name]['en_to_x'])} |")
    rows.append(f"| chance (1 / held-out pairs, mean over languages) | {pct(report['chance'])} | {pct(report['chance'])} |")
    return "\n".join(rows)


def finetune_table(report: dict) -> str:
    rows = ["| task | xlmlib-mini | random init, same recipe | majority class |", "|---|---|---|---|"]
    for task, r in report["mlm+tlm"].items():
        rows.append(f"| {task} | {pct(r['test_accuracy'])} | {pct(report['random'][task]['test_accuracy'])} | "
                    f"{pct(r['majority_accuracy'])} ({r['majority_class']}) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--eval", "--split", "--model", "--template"):
        p.add_argument(name, type=Path, required=True)
    p.add_argument("--run", type=Path, nargs="+", required=True, help="the main run's stage folders, in order")
    p.add_argument("--twin", type=Path, nargs="+", required=True, help="the MLM-only twin's stage folders")
    p.add_argument("--wall", type=float, nargs="+", required=True, help="seconds each main stage took")
    p.add_argument("--twin-wall", type=float, nargs="+", required=True)
    args = p.parse_args(argv)
    ev = json.loads(args.eval.read_text())
    split = json.loads(args.split.read_text())
    model = xlmlib.MaskedLM.from_pretrained(args.model)
    steps, loss = last_loss(args.run)
    twin_steps, twin_loss = last_loss(args.twin)
    values = {
        "PARAMS": f"{sum(p.numel() for p in model.parameters()):,}",
        "WEIGHT_BYTES": f"{(args.model / 'model.safetensors').stat().st_size:,}",
        "SPM_BYTES": f"{(args.model / 'sentencepiece.bpe.model').stat().st_size:,}",
        "LANGS": " ".join(sorted(split["per_language"])),
        "TRAIN_PAIRS": f"{split['train_pairs']:,}", "HELDOUT_PAIRS": f"{split['heldout_pairs']:,}",
        "ENGLISH": f"{split['english_sentences']:,}",
        "STEPS": steps_text(steps), "LOSS": f"{loss:.2f}", "TWIN_STEPS": steps_text(twin_steps),
        "TWIN_LOSS": f"{twin_loss:.2f}", "WALL": f"{sum(args.wall) / 60:.0f}", "TWIN_WALL": f"{sum(args.twin_wall) / 60:.0f}",
        "MASKED_TABLE": masked_table(ev["masked_lm"]), "RETRIEVAL_TABLE": retrieval_table(ev["retrieval"]),
        "FINETUNE_TABLE": finetune_table(ev["finetune"]),
        "CENTERED": ", ".join(f"{name} {pct(ev['retrieval_centered'][name]['x_to_en'])} X→en"
                              for name in ("mlm+tlm", "mlm-only", "random")),
    }
    text = args.template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    write_text(args.model / "README.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
