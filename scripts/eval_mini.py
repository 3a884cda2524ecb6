"""Measure the numbers of the xlmlib-mini model card on the held-out Tatoeba split and German PAWS-X / XNLI.

    python scripts/eval_mini.py --model runs/xlmlib-mini/model --twin runs/xlmlib-mini-mlm/model \
        --data mini-data --assets ../shared/assets --out eval-mini.json

--data is the folder scripts/mini_data.py wrote (heldout/, train/mono/). Reports:
1. masked-token top-1 / top-5 (15% of the pieces masked, seed 0; <unk> targets skipped), over all held-out
   sentences and for the 10 languages with the most training tokens, beside the unigram baseline (always the
   most frequent pieces of the training split);
2. Tatoeba retrieval (mean-pooled embeddings, cosine, nearest neighbour among the held-out pairs of that
   language), X->en and en->X averaged over languages, for the model, its MLM-only twin and a randomly
   initialised twin, beside chance;
3. fine-tuning on German PAWS-X (train on dev minus its last 200 pairs, which select the best step; test on
   test) and German XNLI (train / dev / test), beside the majority class of the training labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xlmlib
from xlmlib.atomic import write_json, write_text
from xlmlib.intrinsic import masked_token_accuracy, retrieval_accuracy, unigram_accuracy
from xlmlib.train.config import FinetuneConfig
from xlmlib.train.finetune import run_finetune
from xlmlib.train.readers import read_classification
from xlmlib.trim import count_pieces


def heldout(data: Path) -> dict[str, tuple[list[str], list[str]]]:
    pairs = {}
    for x_file in sorted((data / "heldout").glob("*-eng.*")):
        lang = x_file.suffix[1:]
        if lang != "eng":
            read = lambda p: p.read_text(encoding="utf-8").splitlines()
            pairs[lang] = (read(x_file), read(x_file.with_suffix(".eng")))
    return pairs


def masked_lm_report(model, tok, pairs, data: Path) -> dict:
    mono = sorted((data / "train" / "mono").glob("train.*"))
    counts = {f.suffix[1:]: count_pieces(tok, [f]) for f in mono}
    total = sum(counts.values())
    specials = [tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.mask_id]
    english = list(dict.fromkeys(e for _, es in pairs.values() for e in es))
    texts = {lang: xs for lang, (xs, _) in pairs.items()} | {"eng": english}
    largest = sorted(counts, key=lambda lang: -int(counts[lang].sum()))[:10]
    report = {}
    for name, lines in [("all", [t for ts in texts.values() for t in ts])] + [(lang, texts[lang]) for lang in largest]:
        res = masked_token_accuracy(model, tok, lines, seed=0)
        base = unigram_accuracy(total, res.pop("targets"), exclude=specials)
        report[name] = {"model": res, "unigram": base}
    return report


def retrieval_report(models: dict, tok, pairs, *, center: bool = False) -> dict:
    out = {}
    for name, model in models.items():
        per_lang = {lang: retrieval_accuracy(model, tok, xs, es, center=center) for lang, (xs, es) in pairs.items()}
        out[name] = {"x_to_en": float(np.mean([r["forward"] for r in per_lang.values()])),
                     "en_to_x": float(np.mean([r["backward"] for r in per_lang.values()])),
                     "per_language": per_lang}
    out["chance"] = float(np.mean([1 / len(xs) for xs, _ in pairs.values()]))
    return out


def finetune_report(model_src: str, tokenizer: str, assets: Path, work: Path, steps: int, label: str,
                    init: str = "pretrained") -> dict:
    """German PAWS-X and XNLI test accuracy of model_src fine-tuned from its weights (init="pretrained") or from
    a random initialisation of its architecture (init="random")."""
    paws = assets / "pawsx-de"
    rows = (paws / "dev.tsv").read_text(encoding="utf-8").splitlines()
    write_text(work / "paws-train.tsv", "\n".join(rows[:-200]) + "\n")
    write_text(work / "paws-dev.tsv", "\n".join([rows[0]] + rows[-200:]) + "\n")
    xnli = assets / "xnli-de-xglue"
    tasks = {"pawsx-de": (work / "paws-train.tsv", work / "paws-dev.tsv", paws / "test.tsv"),
             "xnli-de": (xnli / "train.txt", xnli / "dev.txt", xnli / "test.txt")}
    out = {}
    for task, (train, dev, test) in tasks.items():
        cfg = FinetuneConfig(model=model_src, tokenizer=tokenizer, train=(str(train),), dev=(str(dev),),
                             test=(str(test),), out=str(work / f"{task}-{label}"), steps=steps,
                             batch_size=32, lr=2e-4, warmup_steps=40, eval_every=50, max_len=128, seed=0,
                             progress=False, lang="de", init=init)
        result = run_finetune(cfg)
        majority = Counter(e.label for e in read_classification(train)).most_common(1)[0][0]
        gold = [e.label for e in read_classification(test)]
        out[task] = {"test_accuracy": result["test"][str(test)]["accuracy"], "best_dev_step": result["best"]["step"],
                     "majority_class": majority, "majority_accuracy": gold.count(majority) / len(gold)}
    return out


def random_twin(model):
    torch.manual_seed(0)
    twin = type(model)(model.config)
    twin.reset_parameters()
    return twin.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--twin", help="the MLM-only twin trained with the same budget (for retrieval)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--assets", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--finetune-steps", type=int, default=400)
    parser.add_argument("--parts", default="masked,retrieval,finetune",
                        help="comma-separated parts to run; results are merged into an existing --out")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    start = time.perf_counter()
    model, tok = xlmlib.load(args.model, task="masked-lm")
    pairs = heldout(args.data)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "masked" in parts:
        report["masked_lm"] = masked_lm_report(model, tok, pairs, args.data)
    if "retrieval" in parts:
        twin, _ = xlmlib.load(args.twin, task="masked-lm")
        models = {"mlm+tlm": model, "mlm-only": twin, "random": random_twin(model)}
        report["retrieval"] = retrieval_report(models, tok, pairs)
        report["retrieval_centered"] = retrieval_report(models, tok, pairs, center=True)
    if "finetune" in parts:
        with tempfile.TemporaryDirectory() as work:
            steps = args.finetune_steps
            report["finetune"] = {
                "mlm+tlm": finetune_report(args.model, args.model, args.assets, Path(work), steps, "pretrained"),
                "random": finetune_report(args.model, args.model, args.assets, Path(work), steps, "random",
                                          init="random")}
    report.setdefault("seconds", {})[args.parts] = time.perf_counter() - start
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("retrieval")}, indent=1)[:4000])
    for key in ("retrieval", "retrieval_centered"):
        r = report.get(key, {})
        print(key, {k: (v if k == "chance" else {"x_to_en": v["x_to_en"], "en_to_x": v["en_to_x"]}) for k, v in r.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
