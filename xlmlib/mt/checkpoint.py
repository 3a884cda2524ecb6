"""Translator checkpoints: the original trainer's MT `.pth` (shared/reference/xlm-mt.md section 2), our own
folders (save_pretrained), and initialisation of both halves from one pretrained encoder.

MT `.pth`: top-level `encoder` and `decoder` state dicts (either save layout: HEAD's save_checkpoint or the
Feb-Jul 2019 save_model; optimizer entries are ignored), `params` a plain dict, each part's keys with or
without DDP's `module.` prefix. Read with the safe loader (no code runs; legacy pickles, cuda:0 storages
and numpy 1.x names included). The decoder's extra keys are the original's DECODER_ONLY_PARAMS.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .. import hub, tasks
from ..checkpoint.load import (
    TRANSLATOR_TASK,
    XLMLIB_FORMAT,
    SkipRandomInitOnMeta,
    init_missing,
    read_checkpoint,
    read_config_json,
    read_weights,
    tokenizer_files_in,
)
from ..checkpoint.mapping import CheckpointError, Table, to_internal
from ..checkpoint.record import Checkpoint
from ..checkpoint.safe_load import load_pickle
from ..checkpoint.save import write_safetensors
from ..checkpoint.stand_ins import plain
from ..checkpoint.xlm_pth import XLM_PTH, companion_file, config_from_params, strip_module, vocab_of
from ..config import ModelConfig

logger = logging.getLogger(__name__)

TASK = TRANSLATOR_TASK  # what a Translator folder records as its task
XLM_PTH_DECODER = Table(
    name="original XLM .pth (decoder)",
    base=XLM_PTH.base + (
        ("layers.{i}.cross_attn.q_proj", "encoder_attn.{i}.q_lin"),
        ("layers.{i}.cross_attn.k_proj", "encoder_attn.{i}.k_lin"),
        ("layers.{i}.cross_attn.v_proj", "encoder_attn.{i}.v_lin"),
        ("layers.{i}.cross_attn.out_proj", "encoder_attn.{i}.out_lin"),
        ("layers.{i}.cross_norm", "layer_norm15.{i}"),
    ),
    heads=XLM_PTH.heads,
    tied=XLM_PTH.tied,
)


def _n_layers(state: dict) -> int:
    found = [int(k.split(".")[1]) for k in state if k.startswith("attentions.")]
    if not found:
        raise CheckpointError("no attentions.{i}.* keys: not an XLM Transformer state dict")
    return 1 + max(found)


def read_mt_pth(path: Path) -> tuple[Checkpoint, dict]:
    """(checkpoint in our names under encoder.* / decoder.*, constructor options) of an MT .pth."""
    source = str(path)
    payload = load_pickle(path)
    if not isinstance(payload, dict) or "params" not in payload:
        raise CheckpointError(f"{source}: not an original XLM checkpoint (no `params` entry)")
    if "encoder" not in payload or "decoder" not in payload:
        what = "an MLM/CLM checkpoint (`model` entry)" if "model" in payload else "no `encoder` + `decoder` entries"
        raise CheckpointError(f"{source}: {what}, not a translation model; use Translator.from_encoder({source!r}) "
                              "to start one from a pretrained encoder")
    params = plain(payload["params"])
    parts = {name: strip_module(payload[name]) for name in ("encoder", "decoder")}
    config = config_from_params(params, parts["encoder"], source).replace(causal=False)
    n_dec = _n_layers(parts["decoder"])
    state = {}
    for name, table in (("encoder", XLM_PTH), ("decoder", XLM_PTH_DECODER)):
        n = config.n_layers if name == "encoder" else n_dec
        mapped = to_internal(table, parts[name], n, "xlm", f"{source} [{name}]")
        state.update({f"{name}.{k}": v for k, v in mapped.items()})
    found = [companion_file(path, "codes"), companion_file(path, "vocab")]
    ckpt = Checkpoint(config, state, source, "xlm-pth (translation)", task=TASK,
                      tokenizer_files={p.name: p for p in found if p is not None},
                      vocab=vocab_of(payload, config.vocab_size, source))
    return ckpt, ({"decoder_layers": n_dec} if n_dec != config.n_layers else {})


def _pth_in(folder: Path) -> Path:
    found = sorted(folder.glob("*.pth"))
    if len(found) != 1:
        what = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(f"{folder}: expected config.json (xlmlib) or exactly one .pth file; found {what}")
    return found[0]


def read_translator(src) -> tuple[Checkpoint, dict]:
    path = hub.resolve(src)
    if path.is_dir() and (path / "config.json").is_file():
        meta = read_config_json(path / "config.json")
        if meta.get("task") != TASK or "xlmlib_format" not in meta:
            raise CheckpointError(f"{path}: holds a {meta.get('task') or 'non-xlmlib'} model, not a Translator; "
                                  f"use Translator.from_encoder({str(path)!r}) to start one from an encoder")
        if meta["xlmlib_format"] != XLMLIB_FORMAT:
            raise CheckpointError(f"{path}/config.json: xlmlib_format {meta['xlmlib_format']} is not {XLMLIB_FORMAT}")
        ckpt = Checkpoint(ModelConfig.from_dict(meta["model"]), read_weights(path), str(path), "xlmlib", task=TASK)
        ckpt.tokenizer_files = tokenizer_files_in(path)
        return ckpt, dict(meta.get("head_options", {}))
    return read_mt_pth(_pth_in(path) if path.is_dir() else path)


def _split(model, ckpt: Checkpoint, allow_new: tuple[str, ...]):
    """Strict matching of ckpt.state to the model: unknown keys, wrong shapes and missing keys fail, except
    missing keys containing one of `allow_new` (initialised fresh and reported)."""
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    unknown = sorted(set(ckpt.state) - set(expected))
    wrong = [f"{k}: model expects {expected[k]}, checkpoint has {tuple(t.shape)}"
             for k, t in ckpt.state.items() if k in expected and tuple(t.shape) != expected[k]]
    missing = sorted(set(expected) - set(ckpt.state))
    absent = [k for k in missing if not any(tag in k for tag in allow_new)]
    for problem, items in (("unexpected keys for Translator", unknown), ("shape mismatch", wrong),
                           ("checkpoint lacks Translator weights", absent)):
        if items:
            raise CheckpointError(f"{ckpt.source}: {problem}: {'; '.join(items[:20])}")
    return missing


def _build(cls, ckpt: Checkpoint, options: dict, dtype, device, *, allow_new: tuple[str, ...] = ()):
    """A Translator on meta filled from ckpt (cast to dtype/device); missing keys must match allow_new."""
    with torch.device("meta"), SkipRandomInitOnMeta():
        model = cls(ckpt.config, **options)
    missing = _split(model, ckpt, allow_new)
    dtype, device = dtype or torch.float32, torch.device(device or "cpu")
    model.load_state_dict({k: t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
                           for k, t in ckpt.state.items()}, strict=False, assign=True)
    if missing:
        init_missing(model, set(missing), dtype, device)
    model.new_weights = tuple(missing)
    model.tokenizer_files = dict(ckpt.tokenizer_files)
    return model.eval()


def load_translator(cls, src, *, dtype=None, device=None):
    ckpt, options = read_translator(src)
    return _build(cls, ckpt, options, dtype, device)


def translator_from_encoder(cls, src, *, dtype=None, device=None, decoder_layers=None):
    """Encoder and decoder both from one encoder checkpoint; the cross-attention starts fresh (reported)."""
    ckpt = read_checkpoint(src)
    if ckpt.task == TASK:
        raise CheckpointError(f"{ckpt.source} is already a Translator; use Translator.from_pretrained")
    # Heads of other task models have no place in a translator; its encoder keeps the LM head (lm_head.*).
    other_heads = tasks.head_prefixes() - {"lm_head"}
    enc = {k: v for k, v in ckpt.state.items() if k.split(".")[0] not in other_heads}
    dropped = sorted(set(ckpt.state) - set(enc))
    if dropped:
        logger.info("%s: task-head weights not used by a Translator: %s", ckpt.source, ", ".join(dropped))
    n_dec = decoder_layers or ckpt.config.n_layers
    if n_dec > ckpt.config.n_layers:
        raise ValueError(f"decoder_layers {n_dec} exceeds the encoder's {ckpt.config.n_layers} layers to copy from")
    # Copies: the halves start equal but are trained apart (nothing is shared in the original either).
    dec = {k: v.clone() for k, v in enc.items() if not k.startswith("layers.") or int(k.split(".")[1]) < n_dec}
    state = {**{f"encoder.{k}": v for k, v in enc.items()}, **{f"decoder.{k}": v for k, v in dec.items()}}
    built = Checkpoint(ckpt.config.replace(causal=False), state, ckpt.source, ckpt.format, task=TASK,
                       tokenizer_files=ckpt.tokenizer_files, vocab=ckpt.vocab)
    options = {"decoder_layers": n_dec} if n_dec != ckpt.config.n_layers else {}
    model = _build(cls, built, options, dtype, device, allow_new=(".cross_attn.", ".cross_norm.", "lm_head."))
    logger.warning("%s: Translator initialised from an encoder; newly initialised (train before use): %s",
                   ckpt.source, ", ".join(_summarise(model.new_weights)))
    return model


def _summarise(names) -> list[str]:
    """decoder.layers.{0..5}.cross_attn.q_proj.weight -> one entry per parameter name across layers."""
    seen = {}
    for name in names:
        parts = name.split(".")
        key = ".".join("{i}" if p.isdigit() else p for p in parts)
        seen.setdefault(key, 0)
        seen[key] += 1
    return [f"{k} (x{n})" if n > 1 else k for k, n in seen.items()]


def save_translator(model, directory) -> None:
    from ..atomic import write_json

    directory = Path(directory)
    meta = {"xlmlib_format": XLMLIB_FORMAT, "task": TASK, "model": model.config.to_dict(),
            "head_options": model.head_options()}
    write_safetensors(directory / "model.safetensors", model.state_dict())
    write_json(directory / "config.json", meta)
