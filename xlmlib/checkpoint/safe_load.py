"""Reading weight files without ever executing code from them.

Every pickle goes through torch.load(weights_only=True), whose unpickler only builds tensors, plain
containers and the globals allow-listed here; anything else (os.system, builtins.eval, ...) is refused
and reported by name. There is no fallback to unrestricted unpickling.

The allowlist is the narrowest that the public checkpoints need (shared/reference/formats.md section 6):
argparse.Namespace (fairseq `args`), numpy arrays and scalars (XLM `params['mask_scores']`, pickled
under numpy 1.x module names `numpy.core.*` or 2.x `numpy._core.*`), and OmegaConf containers (fairseq
`cfg`), which we never import: inert stand-in classes (stand_ins.py) take their pickled names.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from .mapping import CheckpointError
from .stand_ins import OMEGACONF_GLOBALS

_NP_CORE = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed numpy.core to numpy._core
# dtype classes numpy >= 1.25 may pickle by name (numpy.dtypes.Float32DType, ...); numeric ones only.
_NUMERIC_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                   "Float16", "Float32", "Float64", "Complex64", "Complex128")


def _numpy_globals() -> list:
    out = [np.ndarray, np.dtype]
    # The (callable, "module.name") form binds the name a file was pickled under to our object.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out.append((_NP_CORE.multiarray._reconstruct, f"{module}._reconstruct"))
        out.append((_NP_CORE.multiarray.scalar, f"{module}.scalar"))
    dtypes = getattr(np, "dtypes", None)
    for name in _NUMERIC_DTYPES:
        cls = getattr(dtypes, f"{name}DType", None)
        if cls is not None:
            out.append((cls, f"numpy.dtypes.{name}DType"))
    return out


SAFE_GLOBALS: tuple = (argparse.Namespace, *_numpy_globals(), *OMEGACONF_GLOBALS)


def load_pickle(path: Path, allowed_globals=SAFE_GLOBALS) -> object:
    """torch.load with weights_only=True and only `allowed_globals` beyond torch's own safe set."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    with path.open("rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip (PK..) or, legacy, a pickle that opens with the PROTO opcode 0x80.
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (neither a torch zip nor a pickle)")
    mmap = zipfile.is_zipfile(path)  # the torch zip format maps lazily; the legacy format cannot
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"it asks for the forbidden global {_global_name(found.group(1))}" if found else _first_line(err)
        raise CheckpointError(f"{path}: refused to unpickle ({what}); nothing from the file was executed") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as err:
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


def _global_name(name: str) -> str:
    """torch reports builtins without a module ("eval") and keeps protocol 2's Python 2 module names
    ("commands.call" for subprocess.call); give the Python 3 name so the culprit is unambiguous."""
    if "." not in name:
        return f"builtins.{name}"
    module, attr = name.rsplit(".", 1)
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
