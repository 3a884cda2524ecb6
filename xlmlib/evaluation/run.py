"""One evaluation across languages (`xlmlib.evaluate`, `xlmlib evaluate`): a fine-tuned model on one test file per
language, scored by the task's published metric, and the mean over languages (XTREME reports both):
sequence classification by accuracy, token classification by entity F1 (seqeval's chunks), QA by EM / F1 (the
MLQA script's rules for its languages, SQuAD's otherwise), retrieval by the accuracy of each sentence's nearest
neighbour in both directions (cosine, or a margin).

The table: {"task", "metric", "per_lang": {lang: {...metrics, "n"}}, "mean": {metric: mean over languages}},
one entry per language code as given.
"""

from __future__ import annotations

import logging
import os
import statistics
from pathlib import Path

from ..atomic import atomic_path, write_json
from .entities import is_entity_tagset

logger = logging.getLogger(__name__)

TASKS = ("sequence", "token", "qa", "retrieval")
# The metric each task is published with, and the keys averaged over languages.
METRIC = {"sequence": "accuracy", "token": "f1", "qa": "f1", "retrieval": "accuracy"}
MEANS = {"sequence": ("accuracy",), "token": ("f1", "precision", "recall"), "qa": ("exact_match", "f1"),
         "retrieval": ("accuracy", "forward", "backward")}


def parse_tests(items) -> dict[str, str]:
    """`lang=PATH` items (a dict passes through): {lang: path}. A language code is letters, digits, '-' or '_';
    for retrieval PATH is `SRC_FILE:TGT_FILE`."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        lang, sep, path = str(item).partition("=")
        if not sep or not lang or not all(c.isalnum() or c in "-_" for c in lang):
            raise ValueError(f"test {item!r}: expected LANG=PATH (e.g. de=test.de.tsv)")
        if lang in out:
            raise ValueError(f"test language {lang!r} is given twice")
        out[lang] = path
    return out


def evaluate(model, tok, task: str, tests, *, batch_size: int = 32, margin: str | None = None,
             max_len: int = 384, doc_stride: int = 128, progress: bool | None = None) -> dict:
    """Each language's score on its file (tests: {lang: path} or LANG=PATH items) and the mean over languages.
    The language code goes to the model where it has a use for it (XLM); retrieval's `de-en` key names both
    sides' languages, and its path is SRC_FILE:TGT_FILE (line-aligned). margin: retrieval by margin scoring
    ("ratio" or "distance", k=4) instead of cosine. max_len, doc_stride: QA's windows (run_qa's 384 / 128; a
    model fine-tuned on other windows is evaluated on those)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    tests = parse_tests(tests)
    if not tests:
        raise ValueError("nothing to evaluate: give at least one LANG=PATH")
    run = {"sequence": _sequence, "token": _token, "qa": _qa, "retrieval": _retrieval}[task]
    metric = METRIC[task]
    if task == "token" and not is_entity_tagset(model.config.labels):
        metric = "accuracy"  # tags that are no entities (part of speech): word accuracy, as XTREME's POS
    per_lang, windows = {}, {"max_len": max_len, "doc_stride": doc_stride}
    for lang, path in tests.items():
        per_lang[lang] = run(model, tok, lang, path, batch_size=batch_size, margin=margin, progress=progress,
                             **(windows if task == "qa" else {}))
        logger.info("%s: %s %.4f (n=%d)", lang, metric, per_lang[lang][metric], per_lang[lang]["n"])
    keys = [key for key in MEANS[task] if all(key in r for r in per_lang.values())] or [metric]
    mean = {key: statistics.fmean(r[key] for r in per_lang.values()) for key in keys}
    return {"task": task, "metric": metric, "per_lang": per_lang, "mean": mean}


def _model_code(model, tok, lang: str) -> str | None:
    """The code passed to the model's inputs: XLM's (language embeddings or Moses rules), None for XLM-R, whose
    inputs have no language (the key still names the table's row)."""
    from .predict import uses_language

    return lang if uses_language(model, tok) else None


def _check_labels(model, gold, path) -> None:
    known = set(model.config.labels)
    missing = sorted(set(gold) - known)
    if missing:
        names = ", ".join(model.config.labels) or "none saved (LABEL_i)"
        raise ValueError(f"{path}: labels {missing} are not among the model's ({names}); every such row would count "
                         "as wrong")


def _sequence(model, tok, lang, path, *, batch_size, margin, progress) -> dict:
    from ..train.readers import read_classification
    from .predict import classify

    examples = read_classification(_file(path), lang=lang)
    _check_labels(model, {e.label for e in examples}, path)
    out = classify(model, tok, [e.text for e in examples], [e.text_pair for e in examples],
                   lang=_model_code(model, tok, lang), batch_size=batch_size, progress=progress)
    return {"accuracy": sum(o["label"] == e.label for o, e in zip(out, examples)) / len(examples), "n": len(examples)}


def _token(model, tok, lang, path, *, batch_size, margin, progress) -> dict:
    from ..train.readers import read_conll
    from .entities import entity_metrics
    from .predict import tag

    examples = read_conll(_file(path), lang=lang)
    _check_labels(model, {t for e in examples for t in e.tags}, path)
    out = tag(model, tok, [list(e.words) for e in examples], lang=_model_code(model, tok, lang),
              batch_size=batch_size, progress=progress)
    gold, predicted = [list(e.tags) for e in examples], [o["labels"] for o in out]
    if not is_entity_tagset(model.config.labels):
        pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
        return {"accuracy": sum(g == p for g, p in pairs) / max(len(pairs), 1), "n": len(examples)}
    return {**entity_metrics(gold, predicted), "n": len(examples)}


def _qa(model, tok, lang, path, *, batch_size, margin, progress, max_len, doc_stride) -> dict:
    from ..qa.answer import predict
    from ..qa.metrics import qa_metrics
    from ..qa.squad import read_squad, references

    examples, _ = read_squad(_file(path))
    version_2 = any(e.is_impossible for e in examples)
    predictions = predict(model, tok, examples, lang=_model_code(model, tok, lang), version_2=version_2,
                          max_len=max_len, doc_stride=doc_stride, batch_size=batch_size, progress=bool(progress))
    return qa_metrics(predictions, references(examples), lang=lang)


def _retrieval(model, tok, lang, path, *, batch_size, margin, progress) -> dict:
    from .mining import retrieval_accuracy

    src_path, sep, tgt_path = path.rpartition(":")
    if not sep:
        raise ValueError(f"retrieval test {lang}={path}: expected SRC_FILE:TGT_FILE (two line-aligned files)")
    src, tgt = (Path(_file(p)).read_text(encoding="utf-8").splitlines() for p in (src_path, tgt_path))
    src_lang, _, tgt_lang = lang.partition("-")
    result = retrieval_accuracy(model, tok, src, tgt, margin=margin, src_lang=_model_code(model, tok, src_lang),
                                tgt_lang=_model_code(model, tok, tgt_lang) if tgt_lang else None,
                                batch_size=batch_size, progress=progress)
    return {**result, "accuracy": (result["forward"] + result["backward"]) / 2}


def _file(path) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return str(path)


def write_results(results: dict, path: str | os.PathLike) -> Path | None:
    """The table as JSON at `path` (atomically), and a bar chart of the per-language metric beside it (.png)
    when matplotlib is installed; returns the chart's path, or None."""
    write_json(path, results)
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend is touched
    except ImportError:
        logger.info("matplotlib is not installed; no chart written")
        return None
    langs = list(results["per_lang"])
    values = [results["per_lang"][lang][results["metric"]] for lang in langs]
    fig = Figure(figsize=(max(4, 0.5 * len(langs) + 2), 3.5))
    ax = fig.subplots()
    ax.bar(langs, values)
    ax.axhline(results["mean"][results["metric"]], linestyle="--", color="gray", label="mean")
    ax.set_ylabel(results["metric"])
    ax.set_title(f"{results['task']}: {results['metric']} per language")
    ax.legend()
    fig.tight_layout()
    png = Path(path).with_suffix(".png")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    return png


def table(results: dict) -> str:
    """The table as text: one row per language and the mean (percent)."""
    metric = results["metric"]
    lines = [f"{'lang':<10}{metric:>12}{'n':>8}"]
    scale = 1 if results["task"] == "qa" else 100  # QA's EM / F1 are percentages already (the official scripts)
    for lang, r in results["per_lang"].items():
        lines.append(f"{lang:<10}{scale * r[metric]:>11.2f}%{r['n']:>8}")
    lines.append(f"{'mean':<10}{scale * results['mean'][metric]:>11.2f}%")
    return "\n".join(lines)
