"""Extractive QA learned on real multilingual text: fine-tune the shipped xlmlib-mini as a QuestionAnswering
model on questions made from Tatoeba sentences, and score held-out questions (EM / F1, SQuAD v1.1 rules)
next to trivial baselines that do not read the question.

The task (no human-written QA data exists offline): a context is `--sentences` sentences of one language
joined by spaces; a question is the beginning of one of them (its first 3 words, or the first third of its
characters in a script written without spaces), never the first sentence; the answer is the rest of that
sentence, so the model must find the sentence the question begins and mark where it ends. Training questions
come from the Tatoeba training split of all 113 languages, held-out ones from the held-out split
(xlmlib/tatoeba.py) of eight languages in six scripts. Contexts are longer than one window (--max-len), so
windows and their (0, 0) labels are exercised. xlmlib-mini was pretrained on sequences of 48 tokens (its
model card), so windows of 48 tokens are what its position table knows.

    python scripts/qa_demo.py --out runs/qa-demo [--steps 2000] [--max-len 48]

Writes OUT/train.json, OUT/dev.json, OUT/heldout.json (SQuAD format), OUT/run (the fine-tuning run) and
OUT/results.json, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_ASSETS = ROOT.parent / "shared" / "assets"
LANGS = ("deu", "fra", "rus", "ell", "ara", "hin", "cmn", "jpn")  # Latin, Cyrillic, Greek, Arabic, Devanagari, CJK
PREFIX_WORDS = 3
MAX_QUESTION_CHARS = 30  # a question of a few tokens leaves room for the context in a 48-token window


def split_question(sentence: str) -> tuple[str, int] | None:
    """(question, where the answer starts in the sentence), or None when the sentence is too short to split (or
    its question too long): the first PREFIX_WORDS words, or the first third of the characters of text written
    without spaces."""
    words = sentence.split()
    if len(words) > PREFIX_WORDS + 1:
        question = " ".join(words[:PREFIX_WORDS])
        start = sentence.index(words[PREFIX_WORDS], len(question))
    elif len(words) == 1 and len(sentence) >= 9:
        start = len(sentence) // 3
        question = sentence[:start]
    else:
        return None
    return (question, start) if len(question) <= MAX_QUESTION_CHARS else None


def make_questions(sentences: list[str], n_sentences: int, seed: int, prefix: str) -> list[dict]:
    """SQuAD-format paragraphs: each context is n_sentences consecutive sentences of a shuffled list; every
    sentence but the first that splits (split_question) gives one question."""
    rng = random.Random(seed)
    sentences = [s.strip() for s in sentences if s.strip()]
    rng.shuffle(sentences)
    paragraphs = []
    for k in range(0, len(sentences) - n_sentences + 1, n_sentences):
        chosen = sentences[k:k + n_sentences]
        context, qas, offset = "", [], 0
        for j, sentence in enumerate(chosen):
            offset = len(context) + (1 if context else 0)
            context = f"{context} {sentence}" if context else sentence
            split = split_question(sentence) if j else None
            if split is not None:
                question, start = split
                answer = sentence[start:]
                qas.append({"id": f"{prefix}-{k}-{j}", "question": question,
                            "answers": [{"text": answer, "answer_start": offset + start}]})
        if qas:
            paragraphs.append({"context": context, "qas": qas})
    return paragraphs


def build_data(assets: Path, out: Path, n_sentences: int, seed: int) -> dict[str, Path]:
    """train.json from the Tatoeba training split of every language (the X sides and the English sentences),
    dev.json from a tenth of it set aside (it picks the best step), heldout.json from the held-out split of
    LANGS (the score)."""
    from xlmlib.tatoeba import read_pairs, split

    train, held = split(read_pairs(assets / "tatoeba-laser-v1"))
    english = list(dict.fromkeys(e for pairs in train.values() for _, e in pairs))
    by_lang = {lang: [x for x, _ in pairs] for lang, pairs in train.items()} | {"eng": english}
    parts = {"train": {}, "dev": {}, "heldout": {lang: [x for x, _ in held[lang]] for lang in LANGS}}
    for lang, sentences in by_lang.items():
        cut = len(sentences) - len(sentences) // 10
        parts["train"][lang], parts["dev"][lang] = sentences[:cut], sentences[cut:]
    files = {}
    for name, langs in parts.items():
        data = [{"title": lang, "paragraphs": make_questions(langs[lang], n_sentences, seed, f"{name}-{lang}")}
                for lang in langs]
        files[name] = out / f"{name}.json"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), encoding="utf-8")
    return files


def baselines(path: Path, seed: int) -> dict[str, dict]:
    """EM / F1 of answers that do not read the question: nothing; the whole context; the answer of another
    question on the same context (a sentence's rest, the right shape in the wrong place)."""
    from xlmlib import qa

    examples, _ = qa.read_squad(path)
    refs = qa.references(examples)
    rng = random.Random(seed)
    by_context: dict[str, list] = {}
    for e in examples:
        by_context.setdefault(e.context, []).append(e)

    def other(e):
        others = [o for o in by_context[e.context] if o.id != e.id]
        return rng.choice(others).answers[0][0] if others else ""

    rules = {"empty answer": lambda e: "", "the whole context": lambda e: e.context,
             "another question's answer in the same context": other}
    return {name: qa.qa_metrics({e.id: rule(e) for e in examples}, refs) for name, rule in rules.items()}


def per_language(path: Path, out: Path) -> dict[str, Path]:
    """The held-out file split by language (its articles), for xlmlib.evaluate's per-language table."""
    data = json.loads(path.read_text(encoding="utf-8"))
    files = {}
    for article in data["data"]:
        files[article["title"]] = out / f"heldout.{article['title']}.json"
        files[article["title"]].write_text(json.dumps({"version": data["version"], "data": [article]},
                                                      ensure_ascii=False), encoding="utf-8")
    return files


def render(report: dict, args) -> str:
    rows = [(f"{args.model} fine-tuned ({args.steps} steps)", report["model"])] + list(report["baselines"].items())
    lines = [f"| held-out questions ({report['model']['n']}) | EM | F1 |", "|---|---|---|"]
    lines += [f"| {name} | {m['exact_match']:.1f} | {m['f1']:.1f} |" for name, m in rows]
    table = report["per_lang"]["per_lang"]
    lines += ["", "| " + " | ".join(["F1 per language"] + list(table)) + " |", "|---" * (len(table) + 1) + "|",
              "| " + " | ".join(["fine-tuned"] + [f"{r['f1']:.1f} ({r['n']})" for r in table.values()]) + " |"]
    lines.append(f"\nbest dev step {report['best_step']}; fine-tuning and evaluation {report['wall_s']} s wall, "
                 f"{report['cpu_s']} s CPU")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", default=os.environ.get("XLMLIB_ASSETS", str(DEFAULT_ASSETS)))
    p.add_argument("--model", default="xlmlib-mini")
    p.add_argument("--out", default="runs/qa-demo")
    p.add_argument("--sentences", type=int, default=4, help="sentences per context")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--doc-stride", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import xlmlib

    out = Path(args.out)
    files = build_data(Path(args.assets), out, args.sentences, args.seed)
    model, tok = xlmlib.load(args.model, task="question-answering")
    start = time.perf_counter(), time.process_time()
    result = xlmlib.finetune(model, tok, files["train"], dev=files["dev"], test=files["heldout"], out=out / "run",
                             steps=args.steps, batch_size=args.batch_size, lr=args.lr, max_len=args.max_len,
                             doc_stride=args.doc_stride, eval_every=max(args.steps // 4, 1), seed=args.seed,
                             warmup_steps=args.steps // 10)
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    per_lang = xlmlib.evaluate(model, tok, "qa", per_language(files["heldout"], out), max_len=args.max_len,
                               doc_stride=args.doc_stride)
    report = {"model": result["test"], "per_lang": per_lang, "baselines": baselines(files["heldout"], args.seed),
              "best_step": result["best"]["step"], "wall_s": round(wall), "cpu_s": round(cpu), "args": vars(args)}
    (out / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(render(report, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
