"""Small conveniences over the classes: load a model with its tokenizer, fill masks, embed sentences,
generate text."""

from __future__ import annotations

import dataclasses
import logging

import torch
from tqdm.auto import tqdm

from . import hub, tasks
from .generate import GenerationConfig, generate_ids
from .languages import tokenizer_options
from .tokenize import Tokenizer
from .tokenize.truncation import warn_truncated

logger = logging.getLogger(__name__)


def resolve_device(device):
    """"auto" is CUDA when present, else the CPU; anything else is used as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load(src, task: str = "masked-lm", *, dtype=None, device=None, **head_options):
    """(model, tokenizer) for any source from_pretrained accepts; device="auto" picks CUDA when present.
    task: a name of tasks.task_names() (encoder, masked-lm, causal-lm, sequence-classification, ...).
    The tokenizer is None (with a warning) when no tokenizer files lie beside the weights."""
    cls = tasks.task_class(task)
    path = hub.resolve(src)  # once: the weights and the tokenizer come from the same local files
    model = cls.from_pretrained(path, dtype=dtype, device=resolve_device(device), **head_options)
    folder = path if path.is_dir() else path.parent
    try:
        tok = Tokenizer.from_pretrained(folder)
    except FileNotFoundError as err:
        logger.warning("no tokenizer loaded for %s: %s", src, err)
        tok = None
    return model, tok


def _surface(tok, token_id: int) -> str:
    """How a vocabulary entry reads in running text (SentencePiece's ▁ is a space, BPE's </w> ends a word)."""
    piece = tok.id_to_token(token_id)
    return piece.replace("\u2581", " ").replace("</w>", "")


def fill_text(text: str, mask: str, k: int, surface: str) -> str:
    """Replace the k-th mask of text by surface, keeping exactly one space where the text or the piece has one
    (fairseq's and transformers' fill-mask drop the space before a ▁ piece)."""
    start = -1
    for _ in range(k + 1):
        start = text.index(mask, start + 1)
    before, after = text[:start], text[start + len(mask):]
    if surface.startswith(" ") and (not before or before[-1].isspace()):
        surface = surface[1:]
    return before + surface + after


# Candidates looked at per mask beyond top_k, so that the special tokens among the likeliest can be skipped.
_SPECIAL_SLACK = 32


@torch.no_grad()
def fill_mask(model, tok, text, top_k: int = 5, lang: str | None = None, targets=None) -> list:
    """For every mask token in text (XLM-R `<mask>`, XLM `<special1>`), the top_k candidates in order:
    dicts with token, id, score (the model's probability of that token) and the filled text. Special tokens
    (<unk>, <s>, </s>, <pad>, the mask, XLM's <special*>) are never proposed. targets: words to score
    instead of the whole vocabulary (a word of several pieces is scored by its first piece, with a warning,
    as transformers' fill-mask does). A list of texts (batched in one forward) gives one result per text."""
    texts = [text] if isinstance(text, str) else list(text)
    mask = tok.id_to_token(tok.mask_id)
    for i, t in enumerate(texts):
        if mask not in t:
            raise ValueError(f"no mask token {mask!r} in the text" + (f" {i}" if len(texts) > 1 else ""))
    target_ids = None if targets is None else _target_ids(tok, [targets] if isinstance(targets, str) else targets)
    # Never cut: the mask could be cut away; a text longer than the model's limit raises in the model instead.
    batch = tok(texts, truncation=False, **tokenizer_options(model, tok, lang))
    device = next(model.parameters()).device
    ids = batch["input_ids"].to(device)
    kwargs = {"langs": batch["langs"].to(device)} if "langs" in batch else {}
    logits = model(ids, attention_mask=batch["attention_mask"].to(device), **kwargs).logits
    results = []
    for row, t in enumerate(texts):
        positions = (ids[row] == tok.mask_id).nonzero().flatten().tolist()
        results.append([_candidates(tok, logits[row, p].float().softmax(-1), top_k, target_ids, t, mask, k)
                        for k, p in enumerate(positions)])
    return results[0] if isinstance(text, str) else results


def _target_ids(tok, targets) -> list[int]:
    out = []
    for word in targets:
        pieces = tok.encode(word, add_special_tokens=False)
        if not pieces:
            raise ValueError(f"target {word!r} has no pieces")
        if len(pieces) > 1:
            logger.warning("target %r is %d pieces (%s); scoring its first piece %r", word, len(pieces),
                           " ".join(tok.id_to_token(i) for i in pieces), tok.id_to_token(pieces[0]))
        out.append(pieces[0])
    return list(dict.fromkeys(out))


def _candidates(tok, probs, top_k: int, target_ids, text: str, mask: str, k: int) -> list[dict]:
    if target_ids is not None:
        chosen = sorted(target_ids, key=lambda i: -float(probs[i]))[:top_k]
    else:
        ranked = probs.topk(min(top_k + _SPECIAL_SLACK, probs.numel())).indices.tolist()
        chosen = [i for i in ranked if not tok.is_special_id(i)][:top_k]
    return [{"token": tok.id_to_token(i), "id": i, "score": float(probs[i]),
             "text": fill_text(text, mask, k, _surface(tok, i))} for i in chosen]


class InputTooLong(ValueError):
    """A text longer than the model takes, with truncation=False; `index` is its position in the input."""

    def __init__(self, index: int, n_tokens: int, limit: int):
        super().__init__(f"text {index} has {n_tokens} tokens; the model takes at most {limit} "
                         "(truncation=True cuts it, with a warning)")
        self.index, self.n_tokens, self.limit = index, n_tokens, limit


def _fit(batch, index, limit: int, truncation: bool, eos: int) -> int:
    """Cut rows longer than `limit` to `limit` tokens ending in </s> (in place); returns how many were cut.
    With truncation=False the first such row raises InputTooLong instead."""
    lengths = batch["attention_mask"].sum(1)
    long_rows = (lengths > limit).nonzero().flatten().tolist()
    if long_rows and not truncation:
        row = long_rows[0]
        raise InputTooLong(index[row], int(lengths[row]), limit)
    if long_rows:
        for key in list(batch):
            batch[key] = batch[key][:, :limit].clone()
        batch["input_ids"][long_rows, limit - 1] = eos
    return len(long_rows)


@torch.no_grad()
def embed(model, tok, texts, *, pooling: str = "mean", normalize: bool = True, batch_size: int = 32,
          lang: str | None = None, progress: bool | None = None, truncation: bool = True) -> torch.Tensor:
    """Sentence vectors (N D). Texts are sorted by length and batched so little compute goes to padding;
    the result comes back in input order. Texts longer than the model takes (XLM-R: 512 tokens) are cut to
    that length with one TruncationWarning saying how many; truncation=False raises InputTooLong instead."""
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    device = next(model.parameters()).device
    show = progress if progress is not None else len(texts) > 10 * batch_size
    limit = min(model.config.max_tokens, getattr(tok, "model_max_length", model.config.max_tokens))
    out, n_cut = torch.empty(len(texts), model.config.dim), 0
    for start in tqdm(range(0, len(texts), batch_size), disable=not show, desc="embed", unit="batch"):
        index = order[start:start + batch_size]
        batch = dict(tok([texts[i] for i in index], truncation=False, **tokenizer_options(model, tok, lang)))
        n_cut += _fit(batch, index, limit, truncation, model.config.eos_index)
        mask = batch["attention_mask"].to(device)
        kwargs = {"langs": batch["langs"].to(device)} if "langs" in batch else {}
        # The CPU mask lets the model read the padding layout without waiting for a GPU (model.py _key_mask).
        h = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"],
                  **kwargs).last_hidden_state.float()
        if pooling == "cls":
            vec = h[:, 0]
        else:
            m = mask[..., None].to(h.dtype)
            vec = (h * m).sum(1) / m.sum(1).clamp(min=1)
        if normalize:
            vec = torch.nn.functional.normalize(vec, dim=-1)
        out[index] = vec.cpu()
    warn_truncated(n_cut, len(texts), limit, "embed")
    return out


def generate(model, tok, prompt, *, lang: str | None = None, **options) -> list[str]:
    """Continue one prompt or a list of prompts (left-padded into one batch); options are GenerationConfig
    fields (max_new_tokens, do_sample, temperature, top_k, top_p, num_beams, length_penalty, eos_token_id,
    seed). Returns the new text of each prompt."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    framed = tok(prompts, padding=False, truncation=False, return_tensors=None, **tokenizer_options(model, tok, lang))
    encoded = [ids[:-1] for ids in framed["input_ids"]]  # drop </s>: the continuation follows the prompt
    width = max(len(e) for e in encoded)
    pad = model.config.pad_index
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(e) for e in encoded])[:, None]).long()
    options.setdefault("eos_token_id", model.config.eos_index)
    options.setdefault("pad_token_id", pad)
    langs = None
    if model.config.has_lang_emb:
        if lang not in model.config.lang2id:
            raise ValueError(f"unknown language {lang!r}; this model knows: {', '.join(model.config.langs)}")
        langs = model.config.lang2id[lang]
    device = next(model.parameters()).device
    out = generate_ids(model, ids.to(device), mask.to(device), langs, GenerationConfig(**options))
    return [tok.decode(row[width:].tolist(), skip_special_tokens=True) for row in out.cpu()]


# Fields of FinetuneConfig that xlmlib.finetune takes as its own arguments, not as **options.
_FINETUNE_OWN = ("model", "task", "train", "dev", "test", "labels", "lang", "tokenizer", "out")


def finetune(model, tok, train, dev=(), *, test=(), labels=None, lang: str = "", out=None, **options) -> dict:
    """Fine-tune `model` in place, with the tokenizer that xlmlib.load returned (each input is framed once, by
    the model's family). The task follows the model's class: a SequenceClassifier or TokenClassifier, or a
    QuestionAnswering / QuestionAnsweringBeam model. train / dev / test: a TSV / JSONL / CoNLL / SQuAD JSON
    path, a list of paths, or a list of dicts ({"text" | "premise" | "sentence1", "text_pair" | "hypothesis" |
    "sentence2", "label", "lang"}; token tasks {"words", "tags"}; QA {"id", "question", "context", "answers"}).
    options: FinetuneConfig fields (steps, lr, batch_size, max_len, eval_every, patience, ...).
    The best dev model (accuracy; QA: F1), with its tokenizer, is kept in OUT/best (OUT: a new temporary folder
    unless given) and loaded back into `model`. Returns {"best", "records", "labels", "test", "out"}."""
    from .train import finetune as ft
    from .train.config import FinetuneConfig, config_from_dict

    task = _finetune_task(model)
    clash = sorted(set(options) & set(_FINETUNE_OWN))
    if clash:
        raise TypeError(f"finetune() takes {', '.join(clash)} as its own arguments, not as options")
    if task in ft.QA_TASKS:
        return _finetune_qa(model, tok, train, dev, test, lang, out, task, options)
    from .train.readers import check_label_set, to_examples

    train_ex, dev_ex, test_ex = (to_examples(x, task, lang=lang, what=name)
                                 for x, name in ((train, "train"), (dev, "dev"), (test, "test")))
    found = tuple(labels) if labels is not None else check_label_set(train_ex, "train")
    labels = ft.model_labels(model, found, tuple(labels or ()))
    ft.check_classes(model, labels)
    cfg = config_from_dict(FinetuneConfig, {**options, "task": task, "labels": labels}, where="finetune() options")
    encoder, cfg = ft.text_encoder(tok), ft.clamped(cfg, model)
    cfg = dataclasses.replace(cfg, out=str(_out_folder(out)))
    result = ft.finetune(model, encoder, train_ex, dev_ex, cfg, labels=labels)
    result["labels"], result["out"] = list(labels), cfg.out
    codes = sorted({e.lang for e in [*train_ex, *dev_ex]})
    result["test"] = ft.evaluate_examples(model, encoder, test_ex, cfg, labels, lang_codes=codes) if test_ex else None
    return result


def _finetune_qa(model, tok, train, dev, test, lang, out, task, options) -> dict:
    from .qa.train import evaluate_qa, finetune_qa, to_qa_examples
    from .train.config import FinetuneConfig, config_from_dict

    if tok is None:
        raise ValueError("no tokenizer: xlmlib.load found none beside the model; pass Tokenizer.from_pretrained(...)")
    train_ex, dev_ex, test_ex = (to_qa_examples(x, what=name) for x, name in ((train, "train"), (dev, "dev"),
                                                                             (test, "test")))
    cfg = config_from_dict(FinetuneConfig, {**options, "task": task}, where="finetune() options")
    cfg = dataclasses.replace(cfg, out=str(_out_folder(out)))
    result = finetune_qa(model, tok, train_ex, dev_ex, cfg, lang=lang or None)
    result["labels"], result["out"] = [], cfg.out
    result["test"] = evaluate_qa(model, tok, test_ex, cfg, lang=lang or None) if test_ex else None
    return result


def _out_folder(out):
    """The run's folder: the one given, else a new temporary one (made only once the inputs are known good)."""
    if out is not None:
        return out
    import tempfile

    out = tempfile.mkdtemp(prefix="xlmlib-finetune-")
    logger.info("fine-tuning into %s", out)
    return out


def _finetune_task(model) -> str:
    """The fine-tuning task of the model's class, as the task registry declares it (tasks.finetune_tasks)."""
    for name, cls in tasks.finetune_tasks().items():
        if isinstance(model, cls):
            return name
    raise TypeError(f"finetune() trains a SequenceClassifier, TokenClassifier or QuestionAnswering model, got "
                    f"{type(model).__name__}: load it with xlmlib.load(src, task='sequence-classification', "
                    "num_labels=N) (or task='token-classification' / 'question-answering')")


__all__ = ["InputTooLong", "embed", "fill_mask", "finetune", "generate", "load"]
