"""Reading weight files without ever executing code from them.

Every pickle goes through torch.load(weights_only=True), whose unpickler only builds tensors, plain
containers and the globals allow-listed by the caller; anything else (os.system, builtins.eval, ...) is
refused and reported by name. There is no fallback to unrestricted unpickling.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from .mapping import CheckpointError


def load_pickle(path: Path, allowed_globals=()) -> object:
    """torch.load with weights_only=True and only `allowed_globals` beyond torch's own safe set."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    mmap = zipfile.is_zipfile(path)  # the torch zip format maps lazily; the legacy format cannot
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"it asks for the forbidden global {found.group(1)}" if found else _first_line(err)
        raise CheckpointError(f"{path}: refused to unpickle ({what}); nothing from the file was executed") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(err)})") from None


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, memory-mapped (pages are read when a tensor is used)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
