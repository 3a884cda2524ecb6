"""Predictions with label names: classify (a SequenceClassifier's label and probabilities for each text or pair)
and tag (a TokenClassifier's label for each word, and the entities those labels form, with character offsets).

Every input is encoded as fine-tuning encodes its examples (xlmlib/train/finetune.py `encode_pair`,
`encode_words`), framed by the model's family (family.py: XLM `</s> A </s> B </s>` as XLM's XNLI code,
XLM-R `<s> A </s></s> B </s>`), so the model sees what it was trained on. The tokenizer's own pair call is not used:
it frames XLM pairs `<s> A </s> B </s>` (transformers' XLMTokenizer); for XLM-R both framings are the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..family import family_of
from ..heads import SequenceClassifier, TokenClassifier
from ..languages import tokenizer_options
from ..losses import IGNORE_INDEX
from ..tokenize.base import check_text
from ..tokenize.truncation import TruncationWarning, caller_stacklevel
from ..tokenize.xlmr import XLMRTokenizer
from .entities import entities, is_entity_tagset
from .words import Word, join_words, split_words

# The fine-tuning encoders look up a label id for every example; predictions have none, so "" stands for it.
_NO_LABEL = {"": 0}


def _expect(model, cls, what: str, task: str) -> None:
    if not isinstance(model, cls):
        raise TypeError(f"{what}() needs a {cls.__name__}, got {type(model).__name__}: load it with "
                        f"xlmlib.load(src, task={task!r})")


def uses_language(model, tok) -> bool:
    """Whether a language code changes what the model sees: XLM's language embeddings or its tokenizer's language
    rules (Moses, segmenters). XLM-R has neither."""
    return model.config.has_lang_emb or not isinstance(tok, XLMRTokenizer)


def language_row(model, tok, lang: str | None) -> int | None:
    """The language-embedding row of `lang` for a model with language embeddings (XLM), which must be given a
    code it knows; None for the others. The codes follow every entry point's rule (languages.py): XLM-R takes
    one with a one-time warning that it has no effect."""
    tokenizer_options(model, tok, lang)
    if not model.config.has_lang_emb:
        return None
    from ..train.sources import lang_ids

    return lang_ids(model.config, [lang])[lang]


def _encoding(model, tok):
    """(unframed encoder, the family's framing, the longest input the model and tokenizer take)."""
    from ..train.finetune import text_encoder

    limit = min(model.config.max_tokens, getattr(tok, "model_max_length", model.config.max_tokens))
    return text_encoder(tok), family_of(model.config).framing(model.config), limit


@torch.no_grad()
def _logits(model, rows: list[list[int]], lang_row: int | None, batch_size: int, progress, what: str) -> list:
    """Float32 CPU logits of each framed row of ids, in input order. Rows are batched by length (little padding);
    the model is put in eval mode for the call (no dropout) and left as it was."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    device = next(model.parameters()).device
    show = progress if progress is not None else len(rows) > 10 * batch_size
    out: list = [None] * len(rows)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), disable=not show, desc=what, unit="batch"):
            index = order[start:start + batch_size]
            ids = torch.full((len(index), max(len(rows[i]) for i in index)), model.config.pad_index)
            mask = torch.zeros_like(ids)
            for k, i in enumerate(index):
                ids[k, :len(rows[i])] = torch.tensor(rows[i])
                mask[k, :len(rows[i])] = 1
            kwargs = {} if lang_row is None else {"langs": torch.full_like(ids, lang_row).to(device)}
            # The CPU mask lets the model read the padding layout without waiting for a GPU (as api.embed).
            logits = model(ids.to(device), attention_mask=mask, **kwargs).logits.float().cpu()
            for k, i in enumerate(index):
                out[i] = logits[k]
    finally:
        model.train(was_training)
    return out


def _warn_cut(n_cut: int, n: int, limit: int, what: str) -> None:
    if n_cut:
        warnings.warn(f"{what}: cut {n_cut} of {n} inputs to {limit} tokens (a pair's longer side first, as "
                      "fine-tuning does)", TruncationWarning, stacklevel=caller_stacklevel())


def _pairs(texts, text_pairs) -> tuple[bool, list[str], list[str]]:
    single = isinstance(texts, str)
    first = [texts] if single else list(texts)
    if text_pairs is None:
        second = [""] * len(first)
    else:
        second = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
        if isinstance(text_pairs, str) != single or len(second) != len(first):
            raise ValueError(f"texts and text_pairs differ: {len(first)} texts, {len(second)} text_pairs "
                             "(a str pairs with a str, a list with a list of the same length)")
    for k, (a, b) in enumerate(zip(first, second)):
        check_text(a, f"texts[{k}]")
        check_text(b, f"text_pairs[{k}]")
    return single, first, second


def classify(model, tok, texts, text_pairs=None, *, lang: str | None = None, batch_size: int = 32,
             progress: bool | None = None):
    """For each text (or pair texts[i], text_pairs[i]): {"label": name, "score": its probability, "scores":
    {name: probability}}, names from model.config.id2label (LABEL_i where the model has none saved). A str in
    gives one dict; a list gives a list. Inputs longer than the model takes are cut, with one warning."""
    _expect(model, SequenceClassifier, "classify", "sequence-classification")
    single, first, second = _pairs(texts, text_pairs)
    lang_row = language_row(model, tok, lang)
    encoder, framing, limit = _encoding(model, tok)
    from ..train.finetune import encode_pair
    from ..train.readers import Example

    rows, n_cut = [], 0
    for a, b in zip(first, second):
        ids, _, cut = encode_pair(Example(a, b, lang=lang or ""), encoder, _NO_LABEL, framing, limit)
        rows.append(ids)
        n_cut += cut
    _warn_cut(n_cut, len(rows), limit, "classify")
    names = model.config.id2label
    results = []
    for logits in _logits(model, rows, lang_row, batch_size, progress, "classify"):
        probs = logits.softmax(-1).tolist()
        best = max(range(len(probs)), key=probs.__getitem__)
        results.append({"label": names[best], "score": probs[best],
                        "scores": {names[i]: p for i, p in enumerate(probs)}})
    return results[0] if single else results


def _word_rows(words: Sequence[str], encoder, framing, limit: int, lang: str | None):
    """(first word, framed ids, position of each word's first sub-token) for consecutive windows of the words:
    as many words as fit the model go into one row (each word encoded alone, as fine-tuning does), the rest into
    the next. A single word longer than the model takes keeps its first pieces."""
    from ..train.finetune import encode_words
    from ..train.readers import Example

    def encode(chunk, max_len):
        e = Example(lang=lang or "", words=tuple(chunk), tags=("",) * len(chunk))
        ids, targets, _ = encode_words(e, encoder, _NO_LABEL, framing, max_len)
        return ids, [j for j, t in enumerate(targets) if t != IGNORE_INDEX]

    start = 0
    while start < len(words):
        ids, positions = encode(words[start:], limit)
        if not positions:
            ids, positions = encode(words[start:start + 1], len(words[start]) + limit)
            ids = ids[:limit - 1] + ids[-1:]  # the first pieces, then the closing special id
        yield start, ids, positions
        start += len(positions)


def _inputs(text_or_words) -> tuple[bool, list[tuple[str, list[Word]]]]:
    """(whether one input was given, [(text, its words)]): a str is split into words, a list of words is kept."""
    single = isinstance(text_or_words, str)
    out = []
    for k, item in enumerate([text_or_words] if single else list(text_or_words)):
        if isinstance(item, str):
            out.append((item, split_words(item)))
        elif isinstance(item, (list, tuple)):
            out.append(join_words(item))
        else:
            raise TypeError(f"input {k}: expected a text (str) or a list of words, got {type(item).__name__}")
    return single, out


def _tagged(text: str, words: list[Word], predicted, names, scheme: str | None, strict: bool) -> dict:
    labels = [names[i] for i, _ in predicted]
    scores = [p for _, p in predicted]
    found = [] if scheme is None else entities(labels, scheme=scheme, strict=strict, where="predicted tags")
    return {"text": text, "words": [w.text for w in words], "offsets": [(w.start, w.end) for w in words],
            "labels": labels, "scores": scores,
            "entities": [{"type": kind, "start": words[i].start, "end": words[j].end,
                          "text": text[words[i].start:words[j].end], "words": (i, j + 1),
                          "score": sum(scores[i:j + 1]) / (j + 1 - i)} for kind, i, j in found]}


def tag(model, tok, text_or_words, *, lang: str | None = None, batch_size: int = 32, scheme: str = "IOB2",
        strict: bool = False, progress: bool | None = None):
    """Label every word. `text_or_words`: a text (str: split by evaluation.words.split_words), or a list whose
    items are texts or lists of words (used as they are); one dict per input, a str in gives one dict:
    {"text", "words", "offsets": [(start, end)] into text, "labels", "scores" (each label's probability),
    "entities": [{"type", "start", "end", "text", "words": (i, j), "score"}]}. For a list of words, text is the
    words joined by single spaces. A word's label is the prediction at its first sub-token (how fine-tuning
    labels it). Entities are decoded from the labels by evaluation.entities (scheme, strict; lenient by default)
    with `end` and `j` exclusive (text[start:end], words[i:j]) and score the mean of their words' scores; a model
    whose labels are not entity tags (part-of-speech, or unnamed LABEL_i) gives none."""
    _expect(model, TokenClassifier, "tag", "token-classification")
    single, inputs = _inputs(text_or_words)
    lang_row = language_row(model, tok, lang)
    encoder, framing, limit = _encoding(model, tok)
    rows, where = [], []
    for k, (_, words) in enumerate(inputs):
        for first, ids, positions in _word_rows([w.text for w in words], encoder, framing, limit, lang):
            rows.append(ids)
            where.append((k, first, positions))
    predicted = [[None] * len(words) for _, words in inputs]
    for (k, first, positions), logits in zip(where, _logits(model, rows, lang_row, batch_size, progress, "tag")):
        probs, best = logits[positions].softmax(-1).max(-1)
        predicted[k][first:first + len(positions)] = zip(best.tolist(), probs.tolist())
    names = model.config.id2label
    chunk_scheme = scheme if is_entity_tagset(list(names.values())) else None
    results = [_tagged(text, words, pred, names, chunk_scheme, strict) for (text, words), pred in zip(inputs, predicted)]
    return results[0] if single else results


__all__ = ["classify", "language_row", "tag", "uses_language"]
