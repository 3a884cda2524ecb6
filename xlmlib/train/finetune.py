"""Fine-tuning: sequence classification (XNLI / PAWS-X style) and token classification (CoNLL NER).

Readers: TSV with a header naming its columns (PAWS-X: id, sentence1, sentence2, label), headerless TSV
(XNLI via XGLUE: premise, hypothesis, label; or text, label), JSONL ({"premise"|"sentence1"|"text",
"hypothesis"|"sentence2"|"text_pair", "label", "lang"}), CoNLL (word ... tag per line, blank line between
sentences). Word labels go to the first sub-token of each word and -100 to the rest and to the framing,
through the word index of every token (word_ids), so it is right for BPE and SentencePiece alike.
Dev accuracy is computed per language; the best dev model is kept in OUT/best.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import write_json
from ..config import ModelConfig
from ..family import Framing, family_of
from ..losses import IGNORE_INDEX
from ..tasks import build_model
from . import distributed as D
from .config import FinetuneConfig
from .data import _EpochOrder, read_lines
from .losses import ClassificationLoss, model_inputs
from .sources import lang_ids
from .text import TextEncoder, load_text_encoder
from .trainer import Trainer

logger = logging.getLogger(__name__)

_FIRST = ("premise", "sentence1", "text", "sentence")
_SECOND = ("hypothesis", "sentence2", "text_pair")


@dataclass(frozen=True)
class Example:
    """One sequence-classification pair (text_pair "" for single sentences) or one tagged sentence
    (words and tags set, text unused)."""

    text: str = ""
    text_pair: str = ""
    label: str = ""
    lang: str = ""
    words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def _pick(row: dict, names, path, line) -> str:
    for name in names:
        if name in row:
            return str(row[name])
    return "" if names is _SECOND else _fail(f"{path}:{line}: none of the columns {names}")


def _fail(msg):
    raise ValueError(msg)


def read_classification(path: str | Path, *, lang: str = "") -> list[Example]:
    """Pairs from a .jsonl file, a TSV with a header, or a headerless TSV (last column = label)."""
    path = Path(path)
    rows = [line for line in read_lines(path) if line.strip()]
    if path.suffix == ".jsonl":
        records = [json.loads(r) for r in rows]
    else:
        header = rows[0].split("\t") if rows else []
        named = "label" in header and any(h in header for h in _FIRST)
        cells = [r.split("\t") for r in (rows[1:] if named else rows)]
        if named:
            records = [dict(zip(header, c)) for c in cells]
        else:
            records = [{"text": c[0], "text_pair": c[1] if len(c) > 2 else "", "label": c[-1]} for c in cells]
    out = []
    for i, r in enumerate(records, start=1):
        out.append(Example(_pick(r, _FIRST, path, i), _pick(r, _SECOND, path, i), str(r.get("label", "")).strip(),
                           str(r.get("lang", r.get("language", lang)))))
    return out


def read_conll(path: str | Path, *, lang: str = "") -> list[Example]:
    """CoNLL: first column the word, last column the tag; blank lines end sentences; -DOCSTART- skipped."""
    sentences, words, tags = [], [], []
    for line in [*read_lines(path), ""]:
        cells = line.split()
        if cells and cells[0] != "-DOCSTART-":
            words.append(cells[0])
            tags.append(cells[-1])
        elif not cells and words:
            sentences.append(Example(lang=lang, words=tuple(words), tags=tuple(tags)))
            words, tags = [], []
    return sentences


def read_examples(path: str | Path, task: str, *, lang: str = "") -> list[Example]:
    return read_conll(path, lang=lang) if task == "token" else read_classification(path, lang=lang)


class Encoded:
    """Examples as padded tensors, framed as the model's family frames its data (family.framing:
    XLM `</s> A </s> B </s>` as in XLM's XNLI code, XLM-R `<s> A </s></s> B </s>`)."""

    def __init__(self, examples: Sequence[Example], encoder: TextEncoder, cfg: ModelConfig, labels: Sequence[str],
                 *, task: str, max_len: int, langs: dict[str, int]):
        label_id = {name: i for i, name in enumerate(labels)}
        self.rows, self.targets, self.langs = [], [], [e.lang for e in examples]
        framing = family_of(cfg).framing(cfg)
        for e in examples:
            if task == "token":
                ids, tgt = _encode_words(e, encoder, label_id, framing, max_len)
            else:
                ids, tgt = _encode_pair(e, encoder, label_id, framing, max_len)
            self.rows.append(ids)
            self.targets.append(tgt)
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


def _label(label_id, name):
    if name not in label_id:
        raise ValueError(f"label {name!r} is not one of {list(label_id)}")
    return label_id[name]


def _encode_pair(e: Example, encoder, label_id, framing: Framing, max_len):
    """The pair (or single text) framed; the longer side is cut first so the whole fits max_len."""
    lang = e.lang or None  # the example's language picks the tokenizer's rules (XLM's Moses)
    a, b = encoder.encode(e.text, lang), encoder.encode(e.text_pair, lang) if e.text_pair else []
    budget = max_len - framing.n_special(pair=bool(b))
    if b:
        b = b[: max(budget // 2, budget - len(a))]
    a = a[: budget - len(b)]
    return framing.frame(a, b or None), _label(label_id, e.label)


def _encode_words(e: Example, encoder, label_id, framing: Framing, max_len):
    """Each word encoded alone (SentencePiece then marks it word-initial, as pre-split input should be);
    its tag goes to its first sub-token (word_ids), -100 to the other sub-tokens and the framing."""
    ids, tgt = [], []
    budget = max_len - framing.n_special()
    for word, tag in zip(e.words, e.tags):
        pieces = encoder.encode(word, e.lang or None) or [encoder.encode("?", e.lang or None)[0]]
        if len(ids) + len(pieces) > budget:
            break
        ids += pieces
        tgt += [_label(label_id, tag)] + [IGNORE_INDEX] * (len(pieces) - 1)
    return framing.frame(ids), framing.frame(tgt, special=lambda _: IGNORE_INDEX)


class ExampleSource:
    """Shuffled batches of encoded examples, a pure function of (seed, step) like the pretraining sources."""

    def __init__(self, data: Encoded, batch_size: int, seed: int):
        self.data, self.order = data, _EpochOrder(len(data), batch_size, seed, shuffle=True)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.collate([int(i) for i in self.order(step)])


@torch.no_grad()
def evaluate(model, data: Encoded, *, batch_size: int = 64, device="cpu") -> dict:
    """Accuracy overall and per language: {"accuracy": a, "per_lang": {lang: a}, "n": n}."""
    correct, total = defaultdict(int), defaultdict(int)
    was_training = model.training
    model.eval()
    for start in range(0, len(data), batch_size):
        index = list(range(start, min(start + batch_size, len(data))))
        batch = {k: v.to(device) for k, v in data.collate(index).items()}
        pred = model(**model_inputs(batch)).logits.argmax(-1)
        hit = pred == batch["labels"]
        for row, i in enumerate(index):
            keep = batch["labels"][row] != IGNORE_INDEX
            correct[data.langs[i]] += int(hit[row][keep].sum())
            total[data.langs[i]] += int(keep.sum())
    model.train(was_training)
    n = sum(total.values())
    per_lang = {lang: correct[lang] / total[lang] for lang in sorted(total) if total[lang]}
    return {"accuracy": sum(correct.values()) / max(n, 1), "per_lang": per_lang, "n": n}


def accuracy_table(results: dict) -> str:
    """A plain-text table of per-language accuracy (for logs and the CLI)."""
    lines = [f"{'lang':<8}{'accuracy':>10}"]
    lines += [f"{lang or '-':<8}{100 * acc:>9.2f}%" for lang, acc in results["per_lang"].items()]
    lines.append(f"{'all':<8}{100 * results['accuracy']:>9.2f}%  ({results['n']} targets)")
    return "\n".join(lines)


def finetune(model, encoder: TextEncoder, train: Sequence[Example], dev: Sequence[Example], cfg: FinetuneConfig,
             *, labels: Sequence[str], dist: D.Dist | None = None) -> dict:
    """Fine-tune `model` in place on examples; evaluates on dev every cfg.eval_every steps (and at the end),
    keeps the best dev model in OUT/best and reloads it into `model`. Returns {"best": ..., "records": ...}."""
    d = dist or D.Dist(device=next(model.parameters()).device)
    langs = lang_ids(model.config, sorted({e.lang for e in [*train, *dev]}))
    enc = {"encoder": encoder, "cfg": model.config, "labels": labels, "task": cfg.task, "max_len": cfg.max_len,
           "langs": langs}
    train_data, dev_data = Encoded(train, **enc), Encoded(dev, **enc)
    out, best = Path(cfg.out), {"accuracy": -1.0, "step": 0, "since": 0}

    def on_eval(module, step):
        res = evaluate(model, dev_data, device=d.device)
        best["since"] += 1
        if res["accuracy"] > best["accuracy"]:
            best.update(accuracy=res["accuracy"], per_lang=res["per_lang"], step=step, since=0)
            if d.main:
                model.save_pretrained(out / "best")
        stop = bool(cfg.patience) and best["since"] >= cfg.patience
        return {"dev_accuracy": res["accuracy"], "stop": stop}

    trainer = Trainer(ClassificationLoss(model), cfg, ExampleSource(train_data, cfg.batch_size, cfg.seed),
                      out_dir=out, evaluate=on_eval if len(dev_data) else None, dist=d)
    records = trainer.fit()
    D.barrier(d)  # rank 0 has finished writing OUT/best
    if len(dev_data) and (out / "best").is_dir():
        best_model = type(model).from_pretrained(out / "best")
        model.load_state_dict(best_model.state_dict())
    best.pop("since")
    return {"best": best, "records": records}


def _collect(files, task, lang) -> list[Example]:
    return [e for f in files for e in read_examples(f, task, lang=lang)]


def run_finetune(cfg: FinetuneConfig, *, device: str | None = None) -> dict:
    """`xlmlib finetune`: read the files, fine-tune, evaluate the best dev model on the test files.
    Writes OUT/results.json ({"best": ..., "test": {file: per-language accuracy}}) and returns it."""
    if not cfg.model or not cfg.out or not cfg.train:
        raise ValueError("finetune needs --model, --train FILE... and --out")
    d = D.setup(device)
    train, dev = _collect(cfg.train, cfg.task, cfg.lang), _collect(cfg.dev, cfg.task, cfg.lang)
    labels = cfg.labels or tuple(sorted({t for e in train for t in (e.tags or (e.label,))}))
    encoder = load_text_encoder(cfg.tokenizer or cfg.model)
    model = build_model(cfg.model, cfg.task, seed=cfg.seed, num_labels=len(labels)).to(d.device)
    torch.manual_seed(cfg.seed)
    result = finetune(model, encoder, train, dev, cfg, labels=labels, dist=d)
    result["labels"], result["test"] = list(labels), {}
    langs = lang_ids(model.config, sorted({e.lang for e in [*train, *dev]}))
    for path in cfg.test:
        data = Encoded(read_examples(path, cfg.task, lang=cfg.lang), encoder, model.config, labels,
                       task=cfg.task, max_len=cfg.max_len, langs=langs)
        result["test"][str(path)] = evaluate(model, data, device=d.device)
    result.pop("records")
    if d.main:
        write_json(Path(cfg.out, "results.json"), result)
    D.teardown(d)
    return result
