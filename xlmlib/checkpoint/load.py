"""From a source (folder, file, hub name) to a model: read, map to our layout, build on meta, materialise.

Strict: every checkpoint key is mapped, ignored on purpose, or a checked tie; encoder weights must all be
present; head weights absent from the checkpoint are initialised and reported; weights of heads the
target model does not have are dropped and reported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from .. import hub, tasks
from ..config import ModelConfig
from ..model import init_weights
from .fairseq import read_fairseq
from .hf import guess_architecture, table_for, task_for_architecture
from .hf_config import config_from_hf
from .mapping import CheckpointError, to_internal
from .record import Checkpoint
from .safe_load import load_pickle, load_safetensors
from .xlm_pth import read_xlm_pth

logger = logging.getLogger(__name__)

XLMLIB_FORMAT = 1
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Tokenizer files of HF / xlmlib folders, copied along by convert (kept_pieces.json: a trimmed folder of the old
# form; trim.json / extend.json: what xlmlib/trim.py and xlmlib/vocab/extend.py record).
TOKENIZER_FILES = ("sentencepiece.bpe.model", "kept_pieces.json", "trim.json", "extend.json", "tokenizer.json",
                   "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "dict.txt")

__all__ = ["Checkpoint", "load_model", "read_checkpoint", "tokenizer_files_in"]


def tokenizer_files_in(folder: Path) -> dict[str, Path]:
    """The tokenizer files in a folder (name -> path), the one list convert copies and folders are read with:
    TOKENIZER_FILES, and XLM's released BPE files (codes_enfr + vocab_enfr, ...) kept beside the weights."""
    found = {name: folder / name for name in TOKENIZER_FILES if (folder / name).is_file()}
    found.update({p.name: p for p in sorted(folder.glob("codes_*")) + sorted(folder.glob("vocab_*")) if p.is_file()})
    return found


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of an HF-style folder: single or sharded safetensors, else single or sharded torch pickles."""
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(_read_file(directory / shard))
            return state
        return _read_file(path)
    raise FileNotFoundError(f"no weights in {directory}: looked for {', '.join(WEIGHT_FILES)}")


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    state = load_pickle(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return state


def read_config_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: invalid JSON ({err})") from None


def read_checkpoint(src, *, part: str | None = None) -> Checkpoint:
    """Read any supported source: an xlmlib/HF folder, a fairseq model.pt (or its folder), an original XLM
    .pth (or its folder), or a bare .safetensors file with config.json beside it. `part` picks the
    encoder or decoder of an XLM translation checkpoint."""
    path = hub.resolve(src)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _read_folder(path, read_weights(path))
        return _read_pickled(_checkpoint_in(path), part)
    if path.suffix == ".safetensors":
        if not (path.parent / "config.json").is_file():
            raise FileNotFoundError(f"{path}: a bare .safetensors file needs config.json beside it")
        return _read_folder(path.parent, load_safetensors(path), str(path))
    return _read_pickled(path, part)


def _checkpoint_in(folder: Path) -> Path:
    if (folder / "model.pt").is_file():
        return folder / "model.pt"
    pth = sorted(folder.glob("*.pth"))
    if len(pth) == 1:
        return pth[0]
    found = f"several .pth files ({', '.join(p.name for p in pth)})" if pth else "none of them"
    raise FileNotFoundError(f"{folder}: expected config.json (xlmlib/HF), model.pt (fairseq) or one .pth (XLM); "
                            f"found {found}")


def _read_pickled(path: Path, part: str | None) -> Checkpoint:
    payload = load_pickle(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint (the pickle holds a {type(payload).__name__}, not a dict)")
    if "params" in payload and ("model" in payload or "encoder" in payload):
        return read_xlm_pth(path, payload, part)
    if {"step", "model", "train_config", "model_config"} <= set(payload):
        return _read_training(path, payload)
    if part is not None:
        raise CheckpointError(f"{path}: part={part!r} applies only to original XLM translation checkpoints")
    if "model" in payload and ("args" in payload or "cfg" in payload):
        return read_fairseq(path, payload)
    keys = ", ".join(sorted(map(str, payload))[:12])
    raise CheckpointError(f"{path}: unknown checkpoint format (top-level keys: {keys}); expected fairseq "
                          "(model + args/cfg) or original XLM (model or encoder/decoder + params)")


def _read_training(path: Path, payload: dict) -> Checkpoint:
    """Our trainer's checkpoint.pt (train/trainer.py Trainer.save): the model sits under `model.` in the
    loss module's state; the tokenizer, when the run had one, is in OUT/model beside it."""
    config = ModelConfig.from_dict(payload["model_config"])
    state = {k[len("model."):]: v for k, v in payload["model"].items() if k.startswith("model.")}
    training = {"step": int(payload["step"]), **{k: payload["train_config"].get(k) for k in
                ("steps", "objective", "task", "mt_steps", "lr", "batch_size", "out") if k in payload["train_config"]}}
    ckpt = Checkpoint(config, state, str(path), f"xlmlib training checkpoint (step {training['step']})",
                      training=training)
    ckpt.tokenizer_files = tokenizer_files_in(path.parent / "model")
    return ckpt


def _read_folder(path: Path, weights: dict, source: str | None = None) -> Checkpoint:
    meta = read_config_json(path / "config.json")
    ckpt = _read_xlmlib(path, meta, weights) if "xlmlib_format" in meta else _read_hf(path, meta, weights)
    if source:
        ckpt.source = source
    ckpt.tokenizer_files = tokenizer_files_in(path)
    return ckpt


def _read_xlmlib(path: Path, meta: dict, weights: dict) -> Checkpoint:
    if meta["xlmlib_format"] != XLMLIB_FORMAT:
        raise CheckpointError(f"{path}/config.json: xlmlib_format {meta['xlmlib_format']} is not {XLMLIB_FORMAT}")
    config = ModelConfig.from_dict(meta["model"])
    return Checkpoint(config, weights, str(path), "xlmlib", dict(meta.get("head_options", {})), meta.get("task"))


def _read_hf(path: Path, meta: dict, weights: dict) -> Checkpoint:
    source = str(path)
    config = config_from_hf(meta, weights.keys(), source)
    archs = meta.get("architectures") or [guess_architecture(config, _strip_base(config, weights))]
    state = to_internal(table_for(config), weights, config.n_layers, archs[0], source)
    return Checkpoint(config, state, source, f"hf ({archs[0]})", task=task_for_architecture(config, archs[0]))


def _strip_base(config: ModelConfig, weights) -> list[str]:
    prefix = table_for(config).base_prefix
    return [k.removeprefix(prefix) for k in weights]


def load_model(cls, src, *, dtype=None, device=None, head_options=None):
    return model_from_checkpoint(cls, read_checkpoint(src), dtype=dtype, device=device, head_options=head_options)


TRANSLATOR_TASK = "Translator"  # the task a Translator folder records (mt/checkpoint.py)


def model_from_checkpoint(cls, ckpt: Checkpoint, *, dtype=None, device=None, head_options=None):
    if ckpt.task == TRANSLATOR_TASK:
        raise CheckpointError(f"{ckpt.source} is a Translator folder (an XLM encoder-decoder): use `xlmlib translate "
                              f"--model {ckpt.source}`, or xlmlib.load(..., task='translation') in Python")
    _warn_causal_mismatch(cls, ckpt)
    options = {**cls.head_options_for(ckpt.state.keys()), **(head_options or {})}
    with torch.device("meta"), SkipRandomInitOnMeta():
        model = cls(ckpt.config, **options)
    materialise(model, ckpt, dtype=dtype or torch.float32, device=torch.device(device or "cpu"))
    return model.eval()


def _warn_causal_mismatch(cls, ckpt: Checkpoint) -> None:
    """A causal LM loaded from weights trained as a masked LM generates poorly (xlmlib-mini gives "is is is"):
    say so, once per load."""
    if not cls.causal or not ckpt.task:
        return
    try:
        trained = tasks.task_class(ckpt.task)
    except ValueError:
        return
    if not trained.causal:
        logger.warning("%s was trained as a %s, not as a causal LM: text generated with it will be poor (generate "
                       "needs a CLM checkpoint, such as XLM's xlm-clm-*)", ckpt.source, trained.task)


class SkipRandomInitOnMeta(torch.overrides.TorchFunctionMode):
    """Random initialisation of meta tensors computes nothing, yet the first normal_ on meta costs about
    1 s per process (torch loads its meta decomposition; measured with torch 2.13 by
    scripts/bench_load.py and cProfile), as long as the rest of loading. Skip those calls."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes its tensor by keyword
        if getattr(func, "__name__", "") in _RANDOM_INITS and getattr(target, "is_meta", False):
            return target
        return func(*args, **kwargs)


_RANDOM_INITS = {"normal_", "uniform_", "trunc_normal_"}


def _split_state(model, ckpt: Checkpoint):
    expected = {name: p.shape for name, p in model.state_dict().items()}
    keep, dropped, unexpected, wrong = {}, [], [], []
    for key, tensor in ckpt.state.items():
        if key in expected:
            if tuple(tensor.shape) != tuple(expected[key]):
                wrong.append(f"{key}: model expects {tuple(expected[key])}, checkpoint has {tuple(tensor.shape)}")
            keep[key] = tensor
        elif key.split(".")[0] in tasks.head_prefixes():
            dropped.append(key)
        else:
            unexpected.append(key)
    if wrong:
        raise CheckpointError(f"{ckpt.source}: shape mismatch for " + "; ".join(wrong))
    if unexpected:
        more = f" and {len(unexpected) - 20} more" if len(unexpected) > 20 else ""
        raise CheckpointError(f"{ckpt.source}: unexpected keys for {type(model).__name__}: "
                              + ", ".join(unexpected[:20]) + more)
    missing = sorted(set(expected) - set(keep))
    heads = type(model).head_prefixes
    absent = [k for k in missing if k.split(".")[0] not in heads]
    if absent:
        raise CheckpointError(f"{ckpt.source}: checkpoint lacks encoder weights: {', '.join(absent[:20])}")
    return keep, dropped, missing


def materialise(model, ckpt: Checkpoint, *, dtype: torch.dtype, device: torch.device) -> None:
    """Fill a meta-device model from the checkpoint, casting straight to dtype/device; initialise new heads."""
    keep, dropped, missing = _split_state(model, ckpt)
    if dropped:
        logger.info("%s: ignored weights of heads %s does not have: %s", ckpt.source, type(model).__name__,
                    ", ".join(sorted(dropped)))
    cast = {k: t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for k, t in keep.items()}
    model.load_state_dict(cast, strict=False, assign=True)
    if missing:
        init_missing(model, set(missing), dtype, device)
        logger.warning("%s: newly initialised %s weights (train them before use): %s", ckpt.source,
                       type(model).__name__, ", ".join(missing))
    model.new_weights = tuple(missing)
    model.dropped_weights = tuple(sorted(dropped))


def init_missing(model, missing: set[str], dtype, device) -> None:
    for name, module in model.named_modules():
        own = {f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)}
        if not own or not own <= missing:
            continue
        module.to_empty(device=device, recurse=False)
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm)):
            init_weights(module, model.config.init_std)
        else:  # bare parameters such as lm_head.bias start at zero
            for param in module.parameters(recurse=False):
                torch.nn.init.zeros_(param)
        with torch.no_grad():
            for param in module.parameters(recurse=False):
                param.data = param.data.to(dtype)
    partial = sorted(k for k in missing if model.get_parameter(k).is_meta)
    if partial:
        raise CheckpointError(f"checkpoint holds only part of the modules owning: {', '.join(partial)}")
