"""`xlmlib pretrain`: build the model, the corpora and the batch source from a TrainConfig, then train.

Inputs under --train/--parallel/--valid are binarized prefixes (from `xlmlib preprocess`: P.json,
P.ids.bin, P.offsets.bin) or text files (one sentence per line), which are binarized once into
OUT/data with --tokenizer. Output: OUT/checkpoint.pt (for --resume), OUT/metrics.jsonl, OUT/loss.png
and OUT/model (save_pretrained, loadable by from_pretrained).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from pathlib import Path

import torch

from ..config import ModelConfig, list_presets
from ..heads import CausalLM, MaskedLM
from . import distributed as D
from .config import TrainConfig
from .data import MemmapCorpus, ParallelCorpus, binarize
from .losses import MaskedOnlyLMLoss, count_targets
from .sources import StreamSource, TLMSource
from .text import _has_tokenizer, load_text_encoder
from .trainer import CHECKPOINT, Trainer

logger = logging.getLogger(__name__)


def build_model(spec: str, objective: str, *, seed: int = 0):
    """A preset name gives a randomly initialised model of that architecture (seeded); anything else is
    loaded with from_pretrained (a folder, checkpoint file or hub name)."""
    cls = CausalLM if objective == "clm" else MaskedLM
    if spec in list_presets() and not Path(spec).exists():
        torch.manual_seed(seed)
        model = cls(ModelConfig.from_preset(spec))
        model.reset_parameters()
        return model
    return cls.from_pretrained(spec)


def corpus_prefix(path: str, out: Path, d: D.Dist, tokenizer: str, *, vocab_size: int) -> str:
    """The binarized prefix for `path`, binarizing a text file into OUT/data first (rank 0 only)."""
    if Path(path + ".json").is_file():
        return path
    if not Path(path).is_file():
        raise FileNotFoundError(f"training input {path} is neither a text file nor a binarized prefix ({path}.json)")
    if not tokenizer:
        raise ValueError(f"{path} is a text file: pass --tokenizer (or binarize it with `xlmlib preprocess`)")
    prefix = out / "data" / Path(path).name
    if d.main and not Path(str(prefix) + ".json").is_file():
        encoder = load_text_encoder(tokenizer)
        if encoder.vocab_size > vocab_size:
            raise ValueError(f"tokenizer {tokenizer} has {encoder.vocab_size} ids, the model only {vocab_size}")
        binarize(path, encoder.encode, prefix, vocab_size=vocab_size)
    D.barrier(d)
    return str(prefix)


def build_source(cfg: TrainConfig, model_cfg: ModelConfig, files, out: Path, d: D.Dist, *, seed: int):
    """The batch source of the objective over `files` (train or valid inputs)."""
    prefixes = [corpus_prefix(f, out, d, cfg.tokenizer, vocab_size=model_cfg.vocab_size) for f in files]
    word_ids = _word_ids(cfg)
    if cfg.objective == "tlm":
        if len(prefixes) != 2:
            raise ValueError("tlm needs --parallel SRC_FILE TGT_FILE")
        return TLMSource(ParallelCorpus(*prefixes), model_cfg, langs=cfg.langs[:2], batch_size=cfg.batch_size,
                         seq_len=cfg.seq_len, seed=seed, mlm_probability=cfg.mlm_probability,
                         reset_positions=cfg.reset_positions, word_ids=word_ids)
    langs = cfg.langs or tuple(f"lang{i}" for i in range(len(prefixes)))
    corpora = {lang: MemmapCorpus(p) for lang, p in zip(langs, prefixes)}
    return StreamSource(corpora, model_cfg, objective=cfg.objective, batch_size=cfg.batch_size,
                        seq_len=cfg.seq_len, seed=seed, mlm_probability=cfg.mlm_probability,
                        sample_alpha=cfg.sample_alpha, lang_alpha=cfg.lang_alpha, word_ids=word_ids)


def _word_ids(cfg: TrainConfig):
    """Whole-word masking needs the tokenizer's word boundaries (a leading ▁, a closing </w>)."""
    if not cfg.whole_word:
        return None
    if cfg.objective == "clm":
        raise ValueError("whole_word applies to the masked objectives (mlm, tlm), not clm")
    if not cfg.tokenizer:
        raise ValueError("whole-word masking needs --tokenizer: word boundaries come from its vocabulary")
    return load_text_encoder(cfg.tokenizer).word_ids_from_ids


def lm_evaluator(source, n_batches: int, d: D.Dist):
    """Mean loss, accuracy and perplexity over the first n_batches batches of a held-out source."""
    n_batches = max(1, min(n_batches, source.batches_per_epoch))

    def evaluate(module, step):
        totals = torch.zeros(3, device=d.device)
        for k in range(n_batches):
            batch = {key: v.to(d.device) for key, v in D.shard_rows(source.batch(k), d).items()}
            loss, correct = module(batch)
            totals += torch.stack([loss.float(), correct.float(), count_targets(batch["labels"]).float()])
        loss_sum, correct, n = D.all_sum(totals, d).tolist()
        mean = loss_sum / max(n, 1)
        return {"eval_loss": mean, "eval_accuracy": correct / max(n, 1), "eval_ppl": math.exp(min(mean, 50.0))}

    return evaluate


def check_inputs(cfg: TrainConfig) -> None:
    """File and language counts agree, checked before anything is read or binarized; the message names
    the flag that is off."""
    if cfg.objective == "tlm":
        if len(cfg.parallel) != 2:
            raise ValueError("tlm needs --parallel SRC_FILE TGT_FILE")
        if cfg.valid and len(cfg.valid) != 2:
            raise ValueError(f"tlm takes a line-aligned pair as --valid (like --parallel), got {len(cfg.valid)} file(s)")
        if cfg.langs and len(cfg.langs) != 2:
            raise ValueError(f"tlm needs two --langs (source, target), got {len(cfg.langs)}: {','.join(cfg.langs)}")
        return
    if not cfg.train:
        raise ValueError("no training data: pass --train FILE... (mlm/clm) or --parallel SRC TGT (tlm)")
    if cfg.langs and len(cfg.langs) != len(cfg.train):
        raise ValueError(f"{len(cfg.train)} --train file(s) but {len(cfg.langs)} --langs "
                         f"({','.join(cfg.langs)}); give one language per --train file")
    if cfg.valid and len(cfg.valid) != len(cfg.train):
        raise ValueError(f"{len(cfg.valid)} --valid file(s) for {len(cfg.train)} --train file(s); give one held-out "
                         "file per language, in the order of --train")


def with_model_tokenizer(cfg: TrainConfig) -> TrainConfig:
    """Without --tokenizer, a local --model folder that holds tokenizer files supplies them (as finetune and
    xlmlib.load do)."""
    folder = Path(cfg.model)
    folder = folder if folder.is_dir() else folder.parent
    beside = _has_tokenizer(folder) or (folder / "vocab.txt").is_file()
    if cfg.tokenizer or not Path(cfg.model).exists() or not beside:
        return cfg
    logger.info("using the tokenizer beside the model: %s", folder)
    return dataclasses.replace(cfg, tokenizer=str(folder))


def run_pretrain(cfg: TrainConfig, *, resume: bool = False, device: str | None = None) -> list[dict]:
    """Train as configured; returns the logged records (rank 0 also writes them to OUT/metrics.jsonl).
    A run that fails before its first checkpoint removes the output folder it created."""
    if not cfg.model or not cfg.out:
        raise ValueError("pretrain needs a model (--model) and an output folder (--out)")
    check_inputs(cfg)
    cfg = with_model_tokenizer(cfg)
    out = Path(cfg.out)
    created = not out.exists()
    try:
        return _pretrain(cfg, out, resume=resume, device=device)
    except Exception:
        if created and out.is_dir() and not (out / CHECKPOINT).is_file():
            shutil.rmtree(out, ignore_errors=True)
        raise


def _pretrain(cfg: TrainConfig, out: Path, *, resume: bool, device: str | None) -> list[dict]:
    inputs = cfg.parallel if cfg.objective == "tlm" else cfg.train
    d = D.setup(device)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg.model, cfg.objective, seed=cfg.seed)
    torch.manual_seed(cfg.seed)  # the same dropout stream on every rank and in every fresh run
    source = build_source(cfg, model.config, inputs, out, d, seed=cfg.seed)
    evaluate = None
    if cfg.valid:
        evaluate = lm_evaluator(build_source(cfg, model.config, cfg.valid, out, d, seed=cfg.seed + 1),
                                cfg.eval_steps, d)
    trainer = Trainer(MaskedOnlyLMLoss(model), cfg, source, out_dir=out, evaluate=evaluate, dist=d)
    records = trainer.fit(resume=resume)
    final = trainer.full_model_state() if d.active else None  # gathered by every rank under FSDP
    if d.main:
        if final is not None and cfg.sharding == "fsdp":
            model = type(model)(model.config)
            model.load_state_dict(final)
        model.save_pretrained(out / "model")
        if cfg.tokenizer:  # the model folder loads on its own: xlmlib fill-mask --model OUT/model
            load_text_encoder(cfg.tokenizer).save_pretrained(out / "model")
    D.teardown(d)
    return records
