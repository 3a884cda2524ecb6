"""Resolve a model name or path to local files: a path, the local HF cache, or (optionally) a download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# Legacy hub names now live under an organisation; the cache may hold either spelling.
_ORGS = ("FacebookAI", "facebook")
# Models shipped inside the package (xlmlib/models/NAME), found by name with no network: xlmlib-mini.
SHIPPED = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "xlmlib-mini"


def shipped_models() -> list[str]:
    """Names of the models that come with the package."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "config.json").is_file()) if SHIPPED.is_dir() else []


def cache_dirs() -> list[Path]:
    """Where the HF cache may be, in the order huggingface_hub itself uses."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    dirs.append(Path(xdg) / "huggingface" / "hub")
    return list(dict.fromkeys(dirs))


def _repo_ids(name: str) -> list[str]:
    return [name] if "/" in name else [name] + [f"{org}/{name}" for org in _ORGS]


def _snapshot(repo_dir: Path, revision: str) -> Path | None:
    ref = repo_dir / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snap = repo_dir / "snapshots" / commit
    return snap if snap.is_dir() else None


def find_in_cache(name: str, revision: str = "main") -> tuple[Path | None, list[Path]]:
    """The cached snapshot folder of `name`, and every folder looked at."""
    looked = []
    for cache in cache_dirs():
        for repo_id in _repo_ids(name):
            repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
            looked.append(repo_dir)
            snap = _snapshot(repo_dir, revision) if repo_dir.is_dir() else None
            if snap is not None:
                return snap, looked
    return None, looked


def _download(name: str, revision: str) -> tuple[Path | None, str]:
    """The downloaded snapshot, or None and why not (offline mode, or each repository's failure)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return None, "HF_HUB_OFFLINE is set, so nothing was downloaded"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None, "huggingface_hub is not installed (pip install huggingface_hub), so nothing was downloaded"
    failures = []
    for repo_id in _repo_ids(name):
        try:
            return Path(snapshot_download(repo_id, revision=revision)), ""
        except Exception as err:  # noqa: BLE001 - any hub failure means "not available here"; reported below
            failures.append(f"{repo_id}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    return None, "the download failed (" + "; ".join(failures) + ")"


# File endings of checkpoints and tokenizer files: a name ending so is a path, never a hub repository.
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".model", ".json", ".txt")


def looks_local(name: str) -> bool:
    """A path rather than a hub name: absolute, ./ ../ ~, a backslash, a trailing "/" (a folder), more than
    one "/" (hub names are "name" or "org/name"), or a file ending. Such a name is never looked up in the
    hub cache."""
    return (name.startswith((".", "~", "/")) or name.endswith(("/", os.sep)) or "\\" in name
            or name.count("/") > 1 or os.path.isabs(name) or name.endswith(_FILE_SUFFIXES))


def find_local(src, revision: str = "main") -> Path | None:
    """Where `src` lies on this machine without any download: an existing path, a shipped model, or a
    cached snapshot; None otherwise."""
    path = Path(os.fspath(src)).expanduser()
    if path.exists():
        return path
    name = os.fspath(src)
    if isinstance(src, os.PathLike) or looks_local(name):
        return None
    if name in shipped_models():
        return SHIPPED / name
    return find_in_cache(name, revision)[0]


def resolve(src, revision: str = "main") -> Path:
    """A local file or folder for `src`: an existing path, a cached hub snapshot, or a fresh download."""
    path = Path(os.fspath(src)).expanduser()
    if path.exists():
        return path
    name = os.fspath(src)
    if isinstance(src, os.PathLike) or looks_local(name):
        raise FileNotFoundError(f"{name}: no such file or directory")
    if name in shipped_models():
        return SHIPPED / name
    snap, looked = find_in_cache(name, revision)
    why = ""
    if snap is None:
        snap, why = _download(name, revision)
    if snap is not None:
        return snap
    # One line, as every CLI error is: where it looked, why nothing was downloaded, what to do.
    raise FileNotFoundError(
        f"{name!r} not found: it is neither a local path, a model shipped with xlmlib "
        f"({', '.join(shipped_models()) or 'none'}), nor in the Hugging Face cache (looked in "
        f"{', '.join(str(p) for p in looked)}); {why}. Provide a local directory (config.json + "
        "model.safetensors, or a fairseq/XLM checkpoint), or set HF_HUB_CACHE to a cache that holds it")
