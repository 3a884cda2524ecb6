"""Write the xlmlib-mini model card (xlmlib/models/xlmlib-mini/README.md) from measured files only:

    python scripts/mini_card.py --eval eval-mini.json --run runs/xlmlib-mini --twin runs/xlmlib-mini-mlm \
        --split mini-data/split.json --model xlmlib/models/xlmlib-mini --wall RUN_SECONDS --twin-wall TWIN_SECONDS

Every number in the card comes from these inputs (eval_mini.py's JSON, the runs' metrics.jsonl, the split
counts, the shipped folder itself); the prose around them is fixed here.
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


def last_loss(run: Path) -> tuple[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    tail = steps[-10:]
    return steps[-1]["step"], sum(r["loss"] for r in tail) / len(tail)


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
    for name in ("--eval", "--run", "--twin", "--split", "--model", "--template"):
        p.add_argument(name, type=Path, required=True)
    p.add_argument("--wall", type=float, required=True, help="seconds the main run took")
    p.add_argument("--twin-wall", type=float, required=True)
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
        "STEPS": f"{steps:,}", "LOSS": f"{loss:.2f}", "TWIN_STEPS": f"{twin_steps:,}", "TWIN_LOSS": f"{twin_loss:.2f}",
        "WALL": f"{args.wall / 60:.0f}", "TWIN_WALL": f"{args.twin_wall / 60:.0f}",
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
