"""Convert any supported checkpoint to an xlmlib or HF folder, then prove it: reload the result and
compare its outputs with the source model's on a probe batch.

Atomic: everything is written into a temporary sibling folder, checked, and only then renamed to the
destination, so an interrupted or failed conversion leaves no half-written destination behind.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import tasks
from ..atomic import atomic_dir
from ..family import family_of
from .load import model_from_checkpoint, read_checkpoint
from .mapping import CheckpointError
from .record import Checkpoint
from .save import FORMATS, save_model

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# fp32 -> fp32 must be exact up to kernel order; reduced precision is reported, not judged.
FP32_TOLERANCE = 1e-5
LARGE_BYTES = 256 * 2**20  # show a progress bar from this size on


def task_class_of(ckpt: Checkpoint):
    """The class the checkpoint names (xlmlib, HF), else the most specific model its weights fill:
    classifier, LM, else the bare encoder (fairseq, original XLM)."""
    if ckpt.task:
        return tasks.task_class(ckpt.task)
    prefixes = {k.split(".")[0] for k in ckpt.state}
    if "classifier" in prefixes and "lm_head" not in prefixes:
        return tasks.task_class("sequence-classification")
    if "lm_head" in prefixes:
        return tasks.task_class("causal-lm" if ckpt.config.causal else "masked-lm")
    return tasks.task_class("encoder")


def probe_batch(config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two rows of random ids, the second right-padded, with langs where the model has language embeddings."""
    g = torch.Generator().manual_seed(seed)
    low = min(family_of(config).n_specials, config.vocab_size - 1)  # ordinary tokens only
    ids = torch.randint(low, config.vocab_size, (2, 8), generator=g)
    ids[1, 5:] = config.pad_index
    mask = (ids != config.pad_index).long()
    batch = {"input_ids": ids, "attention_mask": mask}
    if config.has_lang_emb:
        batch["langs"] = torch.zeros_like(ids)
    return batch


def _main_output(model, batch) -> torch.Tensor:
    with torch.no_grad():
        out = model(**batch)
    t = out.logits if out.logits is not None else out.last_hidden_state
    if t.dim() == 3:  # per-token outputs: pads carry no meaning
        t = t[batch["attention_mask"].bool()]
    return t.float()


def _copy_tokenizer(ckpt: Checkpoint, folder: Path) -> None:
    for name, path in ckpt.tokenizer_files.items():
        shutil.copyfile(path, folder / name)
    if ckpt.vocab and not any(n.startswith("vocab") for n in ckpt.tokenizer_files):
        # XLM keeps its vocabulary in the .pth too (dico_id2word); write it in the vocab file format
        # ("word count", ids >= 14 after the 14 specials, xlm/data/dictionary.py), counts unknown here.
        (folder / "vocab").write_text("".join(f"{w} 0\n" for w in ckpt.vocab[14:]), encoding="utf-8")


def _hf_tokenizer(folder: Path) -> None:
    """Rewrite the copied tokenizer through our save_pretrained, which writes the files and the class name
    transformers' AutoTokenizer expects (older xlmlib folders said "XLMRTokenizer"; XLM's released
    codes_* / vocab_* become vocab.json + merges.txt)."""
    from ..tokenize import Tokenizer

    try:
        tok = Tokenizer.from_pretrained(folder)
    except (FileNotFoundError, ValueError) as err:  # the weights convert even when the tokenizer cannot
        logger.warning("tokenizer not exported for transformers (%s); it will need its own tokenizer", err)
        return
    tok.save_pretrained(folder)


def convert(src, dst, to: str = "xlmlib", dtype=None, *, part: str | None = None) -> float:
    """Write `src` as an `to` ("xlmlib" | "hf") folder at `dst`; return the max |difference| of outputs."""
    if to not in FORMATS:
        raise ValueError(f"to must be one of {FORMATS}, got {to!r}")
    dtype = DTYPES[dtype] if isinstance(dtype, str) else (dtype or torch.float32)
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} already exists; choose a new destination")
    steps = tqdm(total=4, desc=f"convert {Path(str(src)).name}", unit="step", disable=None)
    ckpt = read_checkpoint(src, part=part)
    cls = task_class_of(ckpt)
    large = sum(t.numel() * t.element_size() for t in ckpt.state.values()) >= LARGE_BYTES
    steps.disable = steps.disable or not large
    reference = model_from_checkpoint(cls, ckpt, head_options=ckpt.head_options)
    steps.update()
    try:
        with atomic_dir(dst) as tmp:
            save_model(reference.to(dtype), tmp, format=to)
            _copy_tokenizer(ckpt, tmp)
            if to == "hf":
                _hf_tokenizer(tmp)
            steps.update()
            diff = _verify(cls, ckpt, tmp, dtype)
            steps.update()
        steps.update()
    finally:
        steps.close()
    logger.info("converted %s -> %s (%s, %s): max |diff| %.3g", ckpt.source, dst, to, dtype, diff)
    return diff


def _verify(cls, ckpt: Checkpoint, folder: Path, dtype: torch.dtype) -> float:
    """Reload the written folder (in its dtype) and compare with the source weights in fp32."""
    source = model_from_checkpoint(cls, ckpt, head_options=ckpt.head_options)
    written = cls.from_pretrained(folder, dtype=dtype)
    batch = probe_batch(ckpt.config)
    diff = (_main_output(source, batch) - _main_output(written, batch)).abs().max().item()
    if math.isnan(diff) or (dtype == torch.float32 and diff > FP32_TOLERANCE):
        raise CheckpointError(f"{folder}: the converted model differs from {ckpt.source} by {diff:.3g}")
    return diff
