"""Writing models: our layout (format "xlmlib") or HF transformers' (format "hf"). Every file is written
to a temporary name in the target folder, then renamed over the final name, so a reader never sees a
half-written file and an interrupted save leaves the previous files intact."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic import atomic_path, write_json
from .hf import architecture_for, base_prefixed, table_for
from .hf_config import config_to_hf
from .load import XLMLIB_FORMAT
from .mapping import to_external

FORMATS = ("xlmlib", "hf")


def write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def save_model(model, directory, format: str = "xlmlib") -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    precision = getattr(model, "precision", None)
    if precision in ("int8", "fp32-onednn"):  # their Linear weights are packed for a kernel, not parameters
        raise ValueError(f"a model converted to {precision} cannot be saved; save the fp32 model and convert it "
                         "after loading")
    directory = Path(directory)
    cfg = model.config
    state = model.state_dict()
    if format == "xlmlib":
        # The class name records the task (tasks.task_class reads it back).
        meta = {"xlmlib_format": XLMLIB_FORMAT, "task": type(model).__name__, "model": cfg.to_dict(),
                "head_options": model.head_options()}
        write_safetensors(directory / "model.safetensors", state)
        write_json(directory / "config.json", meta)
        return
    arch = architecture_for(cfg, type(model))
    hf_config = config_to_hf(cfg, arch)
    external = to_external(table_for(cfg), state, cfg.n_layers, arch, prefixed=base_prefixed(cfg, arch))
    write_safetensors(directory / "model.safetensors", external)
    write_json(directory / "config.json", hf_config)
