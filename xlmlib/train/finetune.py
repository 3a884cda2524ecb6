"""Fine-tuning: sequence classification (XNLI / PAWS-X style) and token classification (CoNLL NER).

The files are read by readers.py (strict: a malformed file is refused before anything is encoded). Word
labels go to the first sub-token of each word and -100 to the rest and to the framing, through the word
index of every token (word_ids), so it is right for BPE and SentencePiece alike. Dev scores (accuracy; entity F1
for token tasks) are computed per language; the best dev model is kept in OUT/best (without dev data, the
model after the last step).
The label names are saved with the model (config.labels, transformers' id2label) and read back from it.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from ..atomic import write_json
from ..config import ModelConfig
from ..family import Framing, family_of
from ..losses import IGNORE_INDEX
from ..tasks import build_model
from . import distributed as D
from .config import FinetuneConfig
from .data import EpochOrder
from .readers import Example, check_label_set, read_examples
from .selection import fit_and_select
from .sources import lang_ids
from .step import ClassificationLoss, model_inputs
from .text import TextEncoder, TokenizerAdapter, load_text_encoder

logger = logging.getLogger(__name__)

QA_TASKS = ("qa", "qa-beam")  # xlmlib/qa/train.py fine-tunes these

def text_encoder(tok) -> TextEncoder:
    """What fine-tuning encodes with: an xlmlib tokenizer frames its output (<s> ... </s>), so it is wrapped
    to give unframed ids; Encoded adds the family's framing exactly once."""
    from ..tokenize.base import BaseTokenizer

    if tok is None:
        raise ValueError("no tokenizer: xlmlib.load found none beside the model; pass Tokenizer.from_pretrained(...)")
    return TokenizerAdapter(tok) if isinstance(tok, BaseTokenizer) else tok


def _check_encoder(encoder) -> None:
    from ..tokenize.base import BaseTokenizer

    if isinstance(encoder, BaseTokenizer):
        raise TypeError(f"{type(encoder).__name__} frames what it encodes, and Encoded frames again: wrap it with "
                        "xlmlib.train.text.TokenizerAdapter, or fine-tune through xlmlib.finetune(model, tok, ...)")


def clamped(cfg: FinetuneConfig, model) -> FinetuneConfig:
    """cfg with max_len cut to what the model's position table takes (with a warning when it was longer)."""
    limit = model.config.max_tokens
    if cfg.max_len <= limit:
        return cfg
    logger.warning("max_len %d is longer than this model takes; using its limit, %d", cfg.max_len, limit)
    return dataclasses.replace(cfg, max_len=limit)


class Encoded:
    """Examples as padded tensors, framed as the model's family frames its data (family.framing:
    XLM `</s> A </s> B </s>` as in XLM's XNLI code, XLM-R `<s> A </s></s> B </s>`)."""

    def __init__(self, examples: Sequence[Example], encoder: TextEncoder, cfg: ModelConfig, labels: Sequence[str],
                 *, task: str, max_len: int, langs: dict[str, int]):
        _check_encoder(encoder)
        label_id = {name: i for i, name in enumerate(labels)}
        self.rows, self.targets, self.langs = [], [], [e.lang for e in examples]
        self.tags = [list(e.tags) for e in examples] if task == "token" else None  # gold, for entity F1
        self.labels = list(labels)
        framing = family_of(cfg).framing(cfg)
        n_cut = 0
        for e in examples:
            if task == "token":
                ids, tgt, cut = encode_words(e, encoder, label_id, framing, max_len)
            else:
                ids, tgt, cut = encode_pair(e, encoder, label_id, framing, max_len)
            self.rows.append(ids)
            self.targets.append(tgt)
            n_cut += cut
        if n_cut:  # one warning for the whole data set, pointing at the user's call
            from ..tokenize.truncation import TruncationWarning, caller_stacklevel

            warnings.warn(f"fine-tuning data: truncated {n_cut} of {len(examples)} examples to max_len {max_len} tokens",
                          TruncationWarning, stacklevel=caller_stacklevel())
        self.pad, self.task, self.lang_table = cfg.pad_index, task, langs

    def __len__(self):
        return len(self.rows)

    def collate(self, index) -> dict[str, torch.Tensor]:
        width = max(len(self.rows[i]) for i in index)
        ids = torch.full((len(index), width), self.pad, dtype=torch.long)
        labels = torch.full((len(index), width), IGNORE_INDEX, dtype=torch.long)
        for j, i in enumerate(index):
            ids[j, : len(self.rows[i])] = torch.tensor(self.rows[i])
            if self.task == "token":
                labels[j, : len(self.targets[i])] = torch.tensor(self.targets[i])
        if self.task != "token":
            labels = torch.tensor([self.targets[i] for i in index], dtype=torch.long)
        out = {"input_ids": ids, "attention_mask": (ids != self.pad).long(), "labels": labels}
        if self.lang_table:
            out["langs"] = torch.tensor([self.lang_table.get(self.langs[i], 0) for i in index])[:, None].expand_as(ids)
        return out


def _label(label_id, name, e: Example):
    if name not in label_id:
        where = f"{e.where}: " if e.where else ""
        raise ValueError(f"{where}label {name!r} is not one of the model's labels {list(label_id)}")
    return label_id[name]


def encode_pair(e: Example, encoder, label_id, framing: Framing, max_len):
    """The pair (or single text) framed; the longer side is cut first so the whole fits max_len.
    Also says whether anything was cut."""
    lang = e.lang or None  # the example's language picks the tokenizer's rules (XLM's Moses)
    a, b = encoder.encode(e.text, lang), encoder.encode(e.text_pair, lang) if e.text_pair else []
    budget = max_len - framing.n_special(pair=bool(b))
    cut = len(a) + len(b) > budget
    if b:
        b = b[: max(budget // 2, budget - len(a))]
    a = a[: budget - len(b)]
    return framing.frame(a, b or None), _label(label_id, e.label, e), cut


def encode_words(e: Example, encoder, label_id, framing: Framing, max_len):
    """Each word encoded alone (SentencePiece then marks it word-initial, as pre-split input should be);
    its tag goes to its first sub-token (word_ids), -100 to the other sub-tokens and the framing."""
    ids, tgt, cut = [], [], False
    budget = max_len - framing.n_special()
    for word, tag in zip(e.words, e.tags):
        pieces = encoder.encode(word, e.lang or None) or [encoder.encode("?", e.lang or None)[0]]
        if len(ids) + len(pieces) > budget:
            cut = True
            break
        ids += pieces
        tgt += [_label(label_id, tag, e)] + [IGNORE_INDEX] * (len(pieces) - 1)
    return framing.frame(ids), framing.frame(tgt, special=lambda _: IGNORE_INDEX), cut


class ExampleSource:
    """Shuffled batches of encoded examples, a pure function of (seed, step) like the pretraining sources."""

    def __init__(self, data: Encoded, batch_size: int, seed: int):
        self.data, self.order = data, EpochOrder(len(data), batch_size, seed, shuffle=True)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.collate([int(i) for i in self.order(step)])


@torch.no_grad()
def evaluate(model, data: Encoded, *, batch_size: int = 64, device="cpu") -> dict:
    """Sequence tasks: accuracy overall and per language, {"accuracy", "per_lang": {lang: accuracy}, "n"}.
    Token tasks with entity tags: entity F1 as seqeval computes it (IOB2 chunks, lenient; the words' labels are
    the predictions at their first sub-tokens), {"f1", "precision", "recall", "per_type", "per_lang": {lang: f1},
    "n"}: the figure NER papers report (token accuracy, most of it O, is not). Other tags (part of speech):
    word accuracy, as XTREME reports POS."""
    was_training = model.training
    model.eval()
    predicted = []
    for start in range(0, len(data), batch_size):
        index = list(range(start, min(start + batch_size, len(data))))
        batch = {k: v.to(device) for k, v in data.collate(index).items()}
        pred = model(**model_inputs(batch)).logits.argmax(-1)
        for row in range(len(index)):
            keep = batch["labels"][row] != IGNORE_INDEX if data.task == "token" else slice(None)
            predicted.append(pred[row][keep].tolist() if data.task == "token" else int(pred[row]))
    model.train(was_training)
    if data.task == "token" and token_metric(data.labels) == "f1":
        return _entity_scores(data, predicted)
    correct, total = defaultdict(int), defaultdict(int)
    for lang, guess, gold in zip(data.langs, predicted, data.targets):
        if data.task == "token":  # tags that are no entities (part of speech): the share of words right
            gold = [t for t in gold if t != IGNORE_INDEX]
            correct[lang] += sum(g == p for g, p in zip(gold, guess))
            total[lang] += len(gold)
        else:
            correct[lang] += guess == gold
            total[lang] += 1
    n = sum(total.values())
    per_lang = {lang: correct[lang] / total[lang] for lang in sorted(total)}
    return {"accuracy": sum(correct.values()) / max(n, 1), "per_lang": per_lang, "n": n}


def token_metric(labels) -> str:
    """A token task's metric: entity F1 for entity tags (O, B-PER, ...), word accuracy for other tags."""
    from ..evaluation.entities import is_entity_tagset

    return "f1" if is_entity_tagset(labels) else "accuracy"


def _entity_scores(data: Encoded, predicted: list[list[int]]) -> dict:
    """Entity metrics of tag predictions against the gold tags; words cut off by max_len are predicted O (their
    entities count as missed: the honest figure for a model that never saw them)."""
    from ..evaluation.entities import entity_metrics

    names = [[data.labels[i] for i in row] for row in predicted]
    names = [row + ["O"] * (len(gold) - len(row)) for row, gold in zip(names, data.tags)]
    overall = entity_metrics(data.tags, names)
    by_lang = defaultdict(list)
    for k, lang in enumerate(data.langs):
        by_lang[lang].append(k)
    per_lang = {lang: entity_metrics([data.tags[k] for k in ks], [names[k] for k in ks])["f1"]
                for lang, ks in sorted(by_lang.items())}
    return {**overall, "per_lang": per_lang, "n": len(data.tags)}


def accuracy_table(results: dict) -> str:
    """A plain-text table of the per-language score (accuracy, or entity F1 for token tasks) for logs and the
    CLI."""
    metric = "accuracy" if "accuracy" in results else "f1"
    unit = "targets" if metric == "accuracy" else "sentences"
    lines = [f"{'lang':<8}{metric:>10}"]
    lines += [f"{lang or '-':<8}{100 * value:>9.2f}%" for lang, value in results["per_lang"].items()]
    lines.append(f"{'all':<8}{100 * results[metric]:>9.2f}%  ({results['n']} {unit})")
    return "\n".join(lines)


def finetune(model, encoder: TextEncoder, train: Sequence[Example], dev: Sequence[Example], cfg: FinetuneConfig,
             *, labels: Sequence[str], dist: D.Dist | None = None, resume: bool = False) -> dict:
    """Fine-tune `model` in place on examples, its label names set to `labels` (config.labels, saved with
    it), with dev selection by accuracy (token tasks: entity F1; selection.fit_and_select: the best dev model in OUT/best, reloaded
    into `model`; without dev data, the model after the last step). Returns {"best": ..., "records": ...}."""
    _check_encoder(encoder)
    check_classes(model, labels)
    cfg = clamped(cfg, model)
    model.config = model.config.with_labels(labels=labels)
    d = dist or D.Dist(device=next(model.parameters()).device)
    langs = lang_ids(model.config, sorted({e.lang for e in [*train, *dev]}))
    enc = {"encoder": encoder, "cfg": model.config, "labels": labels, "task": cfg.task, "max_len": cfg.max_len,
           "langs": langs}
    train_data, dev_data = Encoded(train, **enc), Encoded(dev, **enc)
    evaluate_dev = (lambda: evaluate(model, dev_data, device=d.device)) if len(dev_data) else None
    return fit_and_select(model, ClassificationLoss(model), ExampleSource(train_data, cfg.batch_size, cfg.seed), cfg,
                          metric=token_metric(labels) if cfg.task == "token" else "accuracy", evaluate=evaluate_dev, dist=d,
                          resume=resume, save=lambda folder: save_with_tokenizer(model, encoder, folder))


def model_labels(model, data_labels: Sequence[str], given: Sequence[str] = ()) -> tuple[str, ...]:
    """The label names to train `model` with. A head that came trained from its checkpoint, with names, keeps
    them in its own order (data labels outside them, or --labels in another order, are refused, since they
    would silently swap classes); otherwise the names given, else the data's sorted set."""
    new = getattr(model, "new_weights", None)
    trained = model.config.labels if new is not None and not any(k in new for k in _head_keys(model)) else ()
    if not trained:
        return tuple(given or data_labels)
    if given and tuple(given) != trained:
        raise ValueError(f"the model's classes are {list(trained)}, in that order (saved with it); the labels given "
                         f"are {list(given)}: leave them out, or give them in the model's order")
    unknown = sorted(set(data_labels) - set(trained))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the model's classes {list(trained)}")
    return trained


def check_classes(model, labels: Sequence[str]) -> None:
    if len(labels) != model.config.num_labels:
        raise ValueError(f"the model has {model.config.num_labels} labels but the data has {len(labels)} "
                         f"({', '.join(labels)}); load it with num_labels={len(labels)}, or give the labels")


def _head_keys(model) -> list[str]:
    return [k for k in model.state_dict() if k.split(".")[0] in type(model).head_prefixes]


def save_with_tokenizer(model, encoder, folder: Path) -> None:
    """model.save_pretrained plus the tokenizer it was trained with, so the folder loads on its own."""
    model.save_pretrained(folder)
    save = getattr(encoder, "save_pretrained", None)
    if save is not None:
        save(folder)


def evaluate_examples(model, encoder, examples, cfg: FinetuneConfig, labels, *, device=None, lang_codes=None) -> dict:
    """Accuracy of `model` on examples; lang_codes: the languages training saw (their order numbers
    the language embeddings of a model that does not name its languages)."""
    langs = lang_ids(model.config, lang_codes or sorted({e.lang for e in examples}))
    data = Encoded(examples, encoder, model.config, labels, task=cfg.task, max_len=cfg.max_len, langs=langs)
    return evaluate(model, data, device=device or next(model.parameters()).device)


def test_specs(items, lang: str) -> list[tuple[str, str, str]]:
    """(key, path, language) of each --test item: `de=PATH` (the language's row of the table, as `xlmlib
    evaluate --test` takes it) or a bare path (its language from --lang or the file's lang column)."""
    out = []
    for item in items:
        code, sep, path = str(item).partition("=")
        if sep and code and all(c.isalnum() or c in "-_" for c in code) and not Path(item).exists():
            out.append((code, path, code))
        else:
            out.append((str(item), str(item), lang))
    return out


def evaluation_table(task: str, tests: dict[str, dict]) -> dict | None:
    """The test results as `xlmlib evaluate` tabulates them: one row per --test item and the mean."""
    from ..evaluation.run import MEANS, METRIC

    if not tests:
        return None
    kind = "qa" if task in QA_TASKS else task
    metric = METRIC[kind] if all(METRIC[kind] in r for r in tests.values()) else "accuracy"  # POS tags: accuracy
    keys = [k for k in MEANS[kind] if all(k in r for r in tests.values())] or [metric]
    mean = {k: sum(r[k] for r in tests.values()) / len(tests) for k in keys}
    return {"task": kind, "metric": metric, "per_lang": tests, "mean": mean}


def _collect(files, task, lang) -> list[Example]:
    return [e for f in files for e in read_examples(f, task, lang=lang)]


def run_finetune(cfg: FinetuneConfig, *, resume: bool = False, device: str | None = None) -> dict:
    """`xlmlib finetune`: read the files (refused before anything else when malformed), fine-tune, evaluate
    the best dev model on the test files. Writes OUT/results.json ({"best": ..., "labels": ..., "test": {file:
    per-language scores}}) and returns it."""
    if not cfg.model or not cfg.out or not cfg.train:
        raise ValueError("finetune needs --model, --train FILE... and --out")
    if cfg.task in QA_TASKS:
        from ..qa.train import run_finetune_qa

        return run_finetune_qa(cfg, resume=resume, device=device)
    train, dev = _collect(cfg.train, cfg.task, cfg.lang), _collect(cfg.dev, cfg.task, cfg.lang)
    tests = {key: read_examples(path, cfg.task, lang=lang) for key, path, lang in test_specs(cfg.test, cfg.lang)}
    found = check_label_set(train, "--train " + " ".join(cfg.train)) if not cfg.labels else tuple(cfg.labels)
    d = D.setup(device)
    encoder = load_text_encoder(cfg.tokenizer or cfg.model)
    model = build_model(cfg.model, cfg.task, init=cfg.init, seed=cfg.seed, num_labels=len(found)).to(d.device)
    labels = model_labels(model, found, cfg.labels)
    logger.info("labels, in id order: %s (%s)", ", ".join(labels),
                "given" if cfg.labels else "the model's" if labels != found else "sorted from --train")
    cfg = clamped(cfg, model)
    torch.manual_seed(cfg.seed)
    result = finetune(model, encoder, train, dev, cfg, labels=labels, dist=d, resume=resume)
    result["labels"], result["test"] = list(labels), {}
    codes = sorted({e.lang for e in [*train, *dev]})
    for key, examples in tests.items():
        result["test"][key] = evaluate_examples(model, encoder, examples, cfg, labels, device=d.device,
                                                lang_codes=codes)
    result["evaluation"] = evaluation_table(cfg.task, result["test"])
    result.pop("records")
    if d.main:
        write_json(Path(cfg.out, "results.json"), result)
    D.teardown(d)
    return result
