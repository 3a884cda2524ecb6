"""Fine-tuning: sequence classification (XNLI / PAWS-X style) and token classification (CoNLL NER).

Readers: TSV with a header naming its columns (PAWS-X: id, sentence1, sentence2, label), headerless TSV
(XNLI via XGLUE: premise, hypothesis, label; or text, label), JSONL ({"premise"|"sentence1"|"text",
"hypothesis"|"sentence2"|"text_pair", "label", "lang"}), CoNLL (word ... tag per line, blank line between
sentences). Word labels go to the first sub-token of each word and -100 to the rest and to the framing,
through the word index of every token (word_ids), so it is right for BPE and SentencePiece alike.
Dev accuracy is computed per language; the best dev model is kept in OUT/best.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
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
from .text import TextEncoder, TokenizerAdapter, load_text_encoder
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
    where = f"{path}:{line}" if line != "" else str(path)
    return "" if names is _SECOND else _fail(f"{where}: none of the columns {names}")


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


def _from_dict(row: dict, task: str, lang: str, where: str) -> Example:
    if task == "token":
        if "words" not in row or "tags" not in row or len(row["words"]) != len(row["tags"]):
            raise ValueError(f"{where}: a token example needs 'words' and 'tags' of the same length, got {row}")
        return Example(lang=str(row.get("lang", lang)), words=tuple(row["words"]), tags=tuple(map(str, row["tags"])))
    return Example(_pick(row, _FIRST, where, ""), _pick(row, _SECOND, where, ""), str(row.get("label", "")).strip(),
                   str(row.get("lang", row.get("language", lang))))


def to_examples(items, task: str, *, lang: str = "", what: str = "examples") -> list[Example]:
    """Examples from a path (TSV / JSONL / CoNLL), a list of paths, or a list of dicts / Examples."""
    if items is None:
        return []
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            if not Path(item).is_file():
                raise FileNotFoundError(f"{what}: {item}: no such file or directory")
            out += read_examples(item, task, lang=lang)
        elif isinstance(item, Example):
            out.append(item)
        elif isinstance(item, dict):
            out.append(_from_dict(item, task, lang, f"{what}[{i}]"))
        else:
            raise TypeError(f"{what}[{i}]: expected a dict, an Example or a file path, got {type(item).__name__}")
    return out


def label_names(examples: Sequence[Example]) -> tuple[str, ...]:
    """Label names in id order: sorted, as `xlmlib finetune` does without --labels."""
    return tuple(sorted({t for e in examples for t in (e.tags or (e.label,))}))


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
        framing = family_of(cfg).framing(cfg)
        n_cut = 0
        for e in examples:
            if task == "token":
                ids, tgt, cut = _encode_words(e, encoder, label_id, framing, max_len)
            else:
                ids, tgt, cut = _encode_pair(e, encoder, label_id, framing, max_len)
            self.rows.append(ids)
            self.targets.append(tgt)
            n_cut += cut
        if n_cut:  # one warning for the whole data set, stacklevel pointing past this module
            from ..tokenize.base import TruncationWarning

            warnings.warn(f"fine-tuning data: truncated {n_cut} of {len(examples)} examples to max_len {max_len} tokens",
                          TruncationWarning, stacklevel=2)
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
    """The pair (or single text) framed; the longer side is cut first so the whole fits max_len.
    Also says whether anything was cut."""
    lang = e.lang or None  # the example's language picks the tokenizer's rules (XLM's Moses)
    a, b = encoder.encode(e.text, lang), encoder.encode(e.text_pair, lang) if e.text_pair else []
    budget = max_len - framing.n_special(pair=bool(b))
    cut = len(a) + len(b) > budget
    if b:
        b = b[: max(budget // 2, budget - len(a))]
    a = a[: budget - len(b)]
    return framing.frame(a, b or None), _label(label_id, e.label), cut


def _encode_words(e: Example, encoder, label_id, framing: Framing, max_len):
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
        tgt += [_label(label_id, tag)] + [IGNORE_INDEX] * (len(pieces) - 1)
    return framing.frame(ids), framing.frame(tgt, special=lambda _: IGNORE_INDEX), cut


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
             *, labels: Sequence[str], dist: D.Dist | None = None, resume: bool = False) -> dict:
    """Fine-tune `model` in place on examples; evaluates on dev every cfg.eval_every steps (and at the end),
    keeps the best dev model in OUT/best and reloads it into `model`. Returns {"best": ..., "records": ...}."""
    _check_encoder(encoder)
    cfg = clamped(cfg, model)
    d = dist or D.Dist(device=next(model.parameters()).device)
    langs = lang_ids(model.config, sorted({e.lang for e in [*train, *dev]}))
    enc = {"encoder": encoder, "cfg": model.config, "labels": labels, "task": cfg.task, "max_len": cfg.max_len,
           "langs": langs}
    train_data, dev_data = Encoded(train, **enc), Encoded(dev, **enc)
    out, best = Path(cfg.out), {"accuracy": -1.0, "step": 0, "since": 0}
    if resume:
        best.update(_best_so_far(out))

    def on_eval(module, step):
        res = evaluate(model, dev_data, device=d.device)
        best["since"] += 1
        if res["accuracy"] > best["accuracy"]:
            best.update(accuracy=res["accuracy"], per_lang=res["per_lang"], step=step, since=0)
            if d.main:
                save_with_tokenizer(model, encoder, out / "best")
        stop = bool(cfg.patience) and best["since"] >= cfg.patience
        return {"dev_accuracy": res["accuracy"], "stop": stop}

    trainer = Trainer(ClassificationLoss(model), cfg, ExampleSource(train_data, cfg.batch_size, cfg.seed),
                      out_dir=out, evaluate=on_eval if len(dev_data) else None, dist=d)
    records = trainer.fit(resume=resume)
    D.barrier(d)  # rank 0 has finished writing OUT/best
    if len(dev_data) and (out / "best").is_dir():
        best_model = type(model).from_pretrained(out / "best")
        model.load_state_dict(best_model.state_dict())
    best.pop("since")
    return {"best": best, "records": records}


def _best_so_far(out: Path) -> dict:
    """The best dev score an interrupted run logged (so --resume keeps OUT/best unless it is beaten)."""
    from .metrics import read_metrics

    evals = [r for r in read_metrics(out / "metrics.jsonl") if "dev_accuracy" in r]
    if not evals:
        return {}
    top = max(evals, key=lambda r: r["dev_accuracy"])
    return {"accuracy": top["dev_accuracy"], "step": top["step"], "since": sum(r["step"] > top["step"] for r in evals)}


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


def _collect(files, task, lang) -> list[Example]:
    return [e for f in files for e in read_examples(f, task, lang=lang)]


def run_finetune(cfg: FinetuneConfig, *, resume: bool = False, device: str | None = None) -> dict:
    """`xlmlib finetune`: read the files, fine-tune, evaluate the best dev model on the test files.
    Writes OUT/results.json ({"best": ..., "test": {file: per-language accuracy}}) and returns it."""
    if not cfg.model or not cfg.out or not cfg.train:
        raise ValueError("finetune needs --model, --train FILE... and --out")
    d = D.setup(device)
    train, dev = _collect(cfg.train, cfg.task, cfg.lang), _collect(cfg.dev, cfg.task, cfg.lang)
    labels = cfg.labels or label_names(train)
    encoder = load_text_encoder(cfg.tokenizer or cfg.model)
    model = build_model(cfg.model, cfg.task, seed=cfg.seed, num_labels=len(labels)).to(d.device)
    cfg = clamped(cfg, model)
    torch.manual_seed(cfg.seed)
    result = finetune(model, encoder, train, dev, cfg, labels=labels, dist=d, resume=resume)
    result["labels"], result["test"] = list(labels), {}
    for path in cfg.test:
        examples = read_examples(path, cfg.task, lang=cfg.lang)
        result["test"][str(path)] = evaluate_examples(model, encoder, examples, cfg, labels, device=d.device,
                                                      lang_codes=sorted({e.lang for e in [*train, *dev]}))
    result.pop("records")
    if d.main:
        write_json(Path(cfg.out, "results.json"), result)
    D.teardown(d)
    return result
