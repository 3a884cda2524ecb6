"""`xlmlib train-mt`: supervised (mt), denoising (ae) and online back-translation (bt) steps of the original
EncDecTrainer (shared/reference/xlm-mt.md section 4), on the shared Trainer (AdamW, schedules, clipping,
autocast, DDP under torchrun, exact resume). Evaluation: BLEU (sacrebleu, on detokenized text), exact
match and position-wise word accuracy of greedy translations of the held-out pair in every trained
direction, logged to metrics.jsonl.

Differences from the original, on purpose: the optimizer and schedule are the shared Trainer's (the
original uses Adam with its own inverse-sqrt warmup); a step whose lambda is 0 at some iteration still
makes an (empty-gradient) optimizer update there, while the original skips it (steps whose lambda is 0
throughout are left out of the schedule entirely).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch
from torch import nn

from .. import hub
from ..config import ModelConfig, list_presets
from ..losses import IGNORE_INDEX, full_lm_loss
from ..tokenize import XLMTokenizer
from ..train import distributed as D
from ..train.config import MTConfig
from ..train.data import read_lines
from ..train.sources import lang_ids
from ..train.text import load_text_encoder
from ..train.trainer import Trainer
from .data import TASK_BT, Lambda, MTSource, Noise, frame_rows, parse_steps
from .translate import cut

logger = logging.getLogger(__name__)


class MTLoss(nn.Module):
    """The loss of one ae/mt/bt batch: (lambda x summed cross-entropy over predicted tokens, correct count).
    For bt, the batch's sentences are first translated greedily without gradients in eval mode (max_len
    int(1.3 * longest + 5), as the original), then the model learns to translate them back."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # The encoder's own LM head is not trained by translation; frozen so DDP sees no unused parameter.
        for p in model.encoder.lm_head.parameters():
            p.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        src, src_mask, langs = batch["input_ids"], batch["attention_mask"], batch.get("langs")
        if bool((batch["task"] == TASK_BT).any()):
            src, src_mask, langs = self._back_translate(src, src_mask, langs, batch.get("bt_langs"))
        out = self.model(src, src_mask, langs, decoder_input_ids=batch["decoder_input_ids"],
                         decoder_langs=batch.get("decoder_langs"))
        logits, labels = out.logits[:, :-1].float(), batch["labels"][:, 1:]
        loss = full_lm_loss(logits, labels, reduction="sum")
        keep = labels != IGNORE_INDEX
        correct = (logits.argmax(-1)[keep] == labels[keep]).sum()
        return loss * batch["weight"][0], correct

    @torch.no_grad()
    def _back_translate(self, src, src_mask, langs, bt_langs):
        was_training = self.model.training
        self.model.eval()
        try:
            # Rows are padded to the longest of the *global* batch (MTSource), so the width is the
            # original's batch maximum however the batch is split over processes or micro-batches.
            max_len = int(1.3 * src.shape[1] + 5)
            out = self.model.generate(src, src_mask, langs, tgt_lang=bt_langs, max_new_tokens=max_len - 1)
        finally:
            self.model.train(was_training)
        return out, out != self.model.config.pad_index, bt_langs


def build_translator(spec: str, *, init: str = "pretrained", seed: int = 0):
    """The rule of tasks.build_model: init "pretrained" loads a Translator checkpoint as is, and any other
    checkpoint (a folder, a file, a shipped model or a hub name) initialises both halves (from_encoder);
    init "random" is a new Translator of spec's architecture (a preset name, or any source's) with random
    weights, said in one warning line."""
    from ..checkpoint.mapping import CheckpointError
    from ..tasks import with_random_hint
    from .model import Translator

    if init == "random" and spec in list_presets() and hub.find_local(spec) is None:
        model = Translator(ModelConfig.from_preset(spec))
    else:
        try:
            model = Translator.from_pretrained(spec)
        except CheckpointError as err:
            if "from_encoder" not in str(err):
                raise
            model = Translator.from_encoder(spec)
        except FileNotFoundError as err:
            raise with_random_hint(err, spec) from None
        if init == "pretrained":
            return model
    torch.manual_seed(seed)
    model.reset_parameters()
    logger.warning("--init random: a new Translator of the %s architecture with random weights (seed %d)", spec, seed)
    return model


def _decoder(encoder, lang: str):
    """ids -> text for BLEU against raw references: the tokenizer's decode (XLM's BPE pieces joined give
    Moses-tokenized text, detokenized here for `lang`), or a word list's."""
    tok = getattr(encoder, "tokenizer", None)
    if tok is None:
        return encoder.decode
    if not isinstance(tok, XLMTokenizer):
        return tok.decode
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return lambda ids: detok.detokenize(tok.decode(ids).split())


def _encode_file(path: str, encode, max_len: int | None) -> list[list[int]]:
    rows = [encode(line) for line in read_lines(path)]
    return rows if max_len is None else [r for r in rows if 0 < len(r) <= max_len]


def load_data(cfg: MTConfig, encoder):
    """Monolingual and parallel id lists, each file tokenized with its language's rules; training sentences
    longer than max_len or empty are dropped."""
    l1, l2 = cfg.langs
    mono = {lg: _encode_file(f, functools.partial(encoder.encode, lang=lg), cfg.max_len)
            for lg, f in zip(cfg.langs, cfg.mono)}
    para = {}
    if cfg.parallel:
        a = [encoder.encode(x, l1) for x in read_lines(cfg.parallel[0])]
        b = [encoder.encode(x, l2) for x in read_lines(cfg.parallel[1])]
        if len(a) != len(b):
            raise ValueError(f"parallel files {cfg.parallel[0]} ({len(a)} lines) and {cfg.parallel[1]} ({len(b)} lines) "
                             "are not line-aligned")
        pairs = [(x, y) for x, y in zip(a, b) if 0 < len(x) <= cfg.max_len and 0 < len(y) <= cfg.max_len]
        para = {(l1, l2): pairs, (l2, l1): [(y, x) for x, y in pairs]}
    return mono, para


def bleu_evaluator(cfg: MTConfig, model_cfg: ModelConfig, encoder, directions, ids: dict[str, int]):
    """BLEU, exact match and word accuracy of translations of the held-out pair, per direction."""
    import sacrebleu

    texts = {lg: list(read_lines(f)) for lg, f in zip(cfg.langs, cfg.valid)}
    if cfg.eval_lines:
        texts = {lg: t[:cfg.eval_lines] for lg, t in texts.items()}

    def evaluate(module, step):
        model = D.unwrap(module).model
        out = {}
        for src, tgt in directions:
            hyps = translate_ids(model, [encoder.encode(t, src) for t in texts[src]], ids.get(src), ids.get(tgt),
                                 model_cfg, _decoder(encoder, tgt), cfg.eval_beams)
            refs = texts[tgt]
            out[f"bleu_{src}-{tgt}"] = round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
            out[f"exact_{src}-{tgt}"] = round(sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(refs), 4)
            out[f"words_{src}-{tgt}"] = round(word_accuracy(hyps, refs), 4)
        return out

    return evaluate


def word_accuracy(hyps: list[str], refs: list[str]) -> float:
    """Position-wise word accuracy: words equal to the reference word at the same position, over the
    longer of hypothesis and reference (extra or missing words count as wrong), summed over the corpus.
    A finer signal than exact match where BLEU's n-grams are short (synthetic languages, tiny models)."""
    right = total = 0
    for h, r in zip(hyps, refs):
        h, r = h.split(), r.split()
        right += sum(a == b for a, b in zip(h, r))
        total += max(len(h), len(r))
    return right / max(total, 1)


@torch.no_grad()
def translate_ids(model, rows, src_id, tgt_id, cfg: ModelConfig, decode, num_beams=1, batch_size=64):
    """Translations (text) of id rows, in order, in batches sorted by length."""
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    hyps = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        src, mask = frame_rows([rows[i][: cfg.max_tokens - 2] for i in index], cfg)
        out = model.generate(src.to(device), mask.to(device), src_id, tgt_lang=tgt_id, num_beams=num_beams)
        for i, row in zip(index, out.tolist()):
            hyps[i] = decode(cut(row, cfg.eos_index))
    return hyps


def _directions(steps) -> list[tuple[str, str]]:
    seen = []
    for s in steps:
        pair = (s.src, s.tgt) if s.kind == "mt" else (s.tgt, s.src) if s.kind == "bt" else None
        for p in ([pair, (pair[1], pair[0])] if s.kind == "bt" else [pair]):
            if p is not None and p not in seen:
                seen.append(p)
    return seen


def run_train_mt(cfg: MTConfig, *, resume: bool = False, device: str | None = None) -> list[dict]:
    if not cfg.model or not cfg.out:
        raise ValueError("train-mt needs a model (--model) and an output folder (--out)")
    d = D.setup(device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_translator(cfg.model, init=cfg.init, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    encoder = load_text_encoder(cfg.tokenizer or _beside(cfg.model))
    lambdas = {"mt": Lambda(cfg.lambda_mt), "ae": Lambda(cfg.lambda_ae), "bt": Lambda(cfg.lambda_bt)}
    steps = [s for s in parse_steps(cfg.ae_steps, cfg.mt_steps, cfg.bt_steps) if not lambdas[s.kind].always_zero]
    ids = lang_ids(model.config, cfg.langs)
    mono, para = load_data(cfg, encoder)
    source = MTSource(steps, mono=mono, para=para, cfg=model.config, lang_ids=ids, lambdas=lambdas,
                      noise=Noise(cfg.word_shuffle, cfg.word_dropout, cfg.word_blank), batch_size=cfg.batch_size,
                      seed=cfg.seed)
    evaluate = bleu_evaluator(cfg, model.config, encoder, _directions(steps), ids) if cfg.valid else None
    trainer = Trainer(MTLoss(model), cfg, source, out_dir=out, evaluate=evaluate, dist=d)
    records = trainer.fit(resume=resume)
    if d.main:
        model.save_pretrained(out / "model")
        encoder.save_pretrained(out / "model")  # the folder loads on its own (translate --model OUT/model)
    D.teardown(d)
    return records


def _beside(spec: str) -> str:
    """The tokenizer beside a model: its folder, or the word list (vocab.txt) saved there by train-mt."""
    path = hub.find_local(spec)
    if path is None:
        raise ValueError(f"no tokenizer for {spec!r}: pass --tokenizer")
    folder = path if path.is_dir() else path.parent
    return str(folder / "vocab.txt") if (folder / "vocab.txt").is_file() else str(folder)

