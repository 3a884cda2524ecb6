"""`xlmlib pretrain`: build the model, the corpora and the batch source from a TrainConfig, then train.

Inputs under --train/--parallel/--valid are binarized prefixes (from `xlmlib preprocess`: P.json,
P.ids.bin, P.offsets.bin) or text files (one sentence per line), which are binarized once into
OUT/data with --tokenizer. Output: OUT/checkpoint.pt (for --resume), OUT/metrics.jsonl, OUT/loss.png
and OUT/model (save_pretrained, loadable by from_pretrained).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import math
import re
import shutil
from pathlib import Path

import torch

from .. import hub
from ..config import ModelConfig
from ..tasks import build_model
from . import distributed as D
from .config import TrainConfig
from .data import MemmapCorpus, ParallelCorpus, binarize
from .sources import AlternatingSource, SampledSource, StreamSource, TLMSource
from .step import MaskedOnlyLMLoss, count_targets
from .text import has_tokenizer, load_text_encoder
from .trainer import CHECKPOINT, Trainer

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _text_encoder(tokenizer: str):
    """One tokenizer load for all the files of a run (a multilingual recipe binarizes hundreds)."""
    return load_text_encoder(tokenizer)


def corpus_prefix(path: str, out: Path, d: D.Dist, tokenizer: str, *, vocab_size: int, lang: str | None = None) -> str:
    """The binarized prefix for `path`, binarizing a text file into OUT/data first (rank 0 only) with the
    tokenizer's rules for `lang` (XLM's Moses rules differ per language)."""
    if Path(path + ".json").is_file():
        return path
    if not Path(path).is_file():
        raise FileNotFoundError(f"training input {path} is neither a text file nor a binarized prefix ({path}.json)")
    if not tokenizer:
        raise ValueError(f"{path} is a text file: pass --tokenizer (or binarize it with `xlmlib preprocess`)")
    prefix = out / "data" / Path(path).name
    if d.main and not Path(str(prefix) + ".json").is_file():
        encoder = _text_encoder(tokenizer)
        if encoder.vocab_size > vocab_size:
            raise ValueError(f"tokenizer {tokenizer} has {encoder.vocab_size} ids, the model only {vocab_size}")
        binarize(path, functools.partial(encoder.encode, lang=lang), prefix, vocab_size=vocab_size)
    D.barrier(d)
    return str(prefix)


def expand_files(entries, what: str) -> list[str]:
    """Entries with glob characters become their sorted matches (a pattern matching nothing is an error)."""
    files = []
    for entry in entries:
        if glob.has_magic(entry):
            found = sorted(glob.glob(entry))
            if not found:
                raise FileNotFoundError(f"{what}: the pattern {entry!r} matches no file")
            files += found
        else:
            files.append(entry)
    return files


def pair_files(entries) -> list[tuple[str, str]]:
    """--parallel SRC TGT [SRC TGT ...]; two patterns matching k files each pair their k-th matches."""
    if len(entries) == 2 and all(glob.has_magic(e) for e in entries):
        first, second = expand_files(entries[:1], "parallel"), expand_files(entries[1:], "parallel")
        if len(first) != len(second):
            raise ValueError(f"parallel: {entries[0]!r} matches {len(first)} files but {entries[1]!r} {len(second)}")
        return list(zip(first, second))
    files = expand_files(entries, "parallel")
    if len(files) % 2:
        raise ValueError(f"parallel takes files pairwise (SRC TGT ...), got {len(files)}")
    return list(zip(files[::2], files[1::2]))


def file_langs(files) -> list[str]:
    """Each file's last suffix as its language (train.de-en.de -> de), when that names every file apart;
    otherwise lang0, lang1, ..."""
    suffixes = [Path(f).suffix[1:] for f in files]
    if all(suffixes) and len(set(suffixes)) == len(suffixes):
        return suffixes
    return [f"lang{i}" for i in range(len(files))]


def _rules(lang: str) -> str | None:
    """The language a file is tokenized with: its code, unless file_langs could only number the file
    (lang0, lang1, ...), which names no tokenization rules."""
    return None if re.fullmatch(r"lang\d+", lang) else lang


def build_source(cfg: TrainConfig, model_cfg: ModelConfig, out: Path, d: D.Dist, *, seed: int, valid: bool = False):
    """The batch source of the objective over the training inputs, or over `valid` (for mlm+tlm: MLM on it).
    Text files are binarized with their language's tokenization rules."""
    def prefix(path, lang):
        return corpus_prefix(path, out, d, cfg.tokenizer, vocab_size=model_cfg.vocab_size, lang=_rules(lang))

    common = {"batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "seed": seed,
              "mlm_probability": cfg.mlm_probability, "word_ids": _word_ids(cfg)}
    if cfg.objective == "tlm":
        return _tlm_source(cfg, model_cfg, cfg.valid if valid else cfg.parallel, prefix, common)
    mono = cfg.valid if valid else cfg.train
    if cfg.objective != "mlm+tlm" or valid:
        objective = "mlm" if cfg.objective == "mlm+tlm" else cfg.objective
        return _stream_source(cfg, model_cfg, mono, prefix, common, objective)
    return AlternatingSource([_stream_source(cfg, model_cfg, mono, prefix, common, "mlm"),
                              _tlm_source(cfg, model_cfg, cfg.parallel, prefix, common)])


def _stream_source(cfg, model_cfg, entries, prefix, common, objective):
    files = expand_files(entries, "train")
    langs = cfg.langs or tuple(file_langs(files))  # counts agree: check_inputs ran before anything was read
    corpora = {lang: MemmapCorpus(prefix(f, lang)) for lang, f in zip(langs, files, strict=True)}
    # Several languages: a corpus smaller than one batch is repeated rather than refused, so that small
    # languages can be mixed with large ones.
    return StreamSource(corpora, model_cfg, objective=objective, sample_alpha=cfg.sample_alpha,
                        lang_alpha=cfg.lang_alpha, repeat=len(corpora) > 1, **common)


def _tlm_source(cfg, model_cfg, entries, prefix, common):
    pairs = pair_files(entries)
    if not pairs:
        raise ValueError("tlm needs --parallel SRC_FILE TGT_FILE")
    if cfg.parallel_langs:
        langs = list(cfg.parallel_langs)
    elif cfg.objective == "tlm" and len(cfg.langs) >= 2 and len(pairs) == 1:
        langs = list(cfg.langs[:2])
    else:
        langs = [lang for pair in pairs for lang in file_langs(pair)]
    if len(langs) != 2 * len(pairs):
        raise ValueError(f"{len(pairs)} parallel pairs need {2 * len(pairs)} parallel_langs, got {len(langs)}")
    sources, sizes = {}, {}
    for k, (src, tgt) in enumerate(pairs):
        name = f"{langs[2 * k]}-{langs[2 * k + 1]}"
        name = name if name not in sources else f"{name}.{k}"
        corpus = ParallelCorpus(prefix(src, langs[2 * k]), prefix(tgt, langs[2 * k + 1]), repeat=len(pairs) > 1)
        sources[name] = TLMSource(corpus, model_cfg, langs=langs[2 * k:2 * k + 2], reset_positions=cfg.reset_positions,
                                  **common)
        sizes[name] = len(corpus)
    if len(sources) == 1:
        return next(iter(sources.values()))
    return SampledSource(sources, sizes, alpha=cfg.lang_alpha, seed=common["seed"])


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
    """File and language counts agree (globs expanded), checked before anything is read or binarized; the
    message names the flag that is off."""
    inputs = cfg.parallel if cfg.objective == "tlm" else cfg.train
    if not inputs or (cfg.objective == "mlm+tlm" and not cfg.parallel):
        raise ValueError("no training data: pass --train FILE... (mlm/clm), --parallel SRC TGT (tlm), or both "
                         "(mlm+tlm)")
    if cfg.objective in ("tlm", "mlm+tlm"):
        pairs = pair_files(cfg.parallel)
        if cfg.parallel_langs and len(cfg.parallel_langs) != 2 * len(pairs):
            raise ValueError(f"{len(pairs)} --parallel pair(s) need {2 * len(pairs)} parallel_langs, "
                             f"got {len(cfg.parallel_langs)}")
        if cfg.objective == "tlm":
            if cfg.valid:
                pair_files(cfg.valid)  # a held-out pair, SRC TGT, like --parallel
            return
    files = expand_files(cfg.train, "train")
    if cfg.langs and len(cfg.langs) != len(files):
        raise ValueError(f"{len(files)} --train file(s) but {len(cfg.langs)} --langs ({','.join(cfg.langs)}); "
                         "give one language per --train file")
    valid = expand_files(cfg.valid, "valid")
    if valid and cfg.langs and len(valid) != len(cfg.langs):
        raise ValueError(f"{len(valid)} --valid file(s) but {len(cfg.langs)} --langs ({','.join(cfg.langs)}); "
                         "give one held-out file per language, in the order of --langs")


def with_model_tokenizer(cfg: TrainConfig) -> TrainConfig:
    """Without --tokenizer, the tokenizer files beside --model (a local folder or file, a shipped model, a
    cached hub snapshot) supply them, as finetune and xlmlib.load do."""
    local = None if cfg.tokenizer else hub.find_local(cfg.model)
    if local is None:
        return cfg
    folder = local if local.is_dir() else local.parent
    if not (has_tokenizer(folder) or (folder / "vocab.txt").is_file()):
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
    d = D.setup(device)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg.model, "causal-lm" if cfg.objective == "clm" else "masked-lm", init=cfg.init, seed=cfg.seed)
    torch.manual_seed(cfg.seed)  # the same dropout stream on every rank and in every fresh run
    source = build_source(cfg, model.config, out, d, seed=cfg.seed)
    evaluate = None
    if cfg.valid:
        evaluate = lm_evaluator(build_source(cfg, model.config, out, d, seed=cfg.seed + 1, valid=True),
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
            _text_encoder(cfg.tokenizer).save_pretrained(out / "model")
    D.teardown(d)
    return records
