"""No code from a checkpoint ever runs: payloads whose unpickling would call os.system, builtins.eval or
subprocess are refused with the forbidden global named, and their side effect (a marker file) never
happens. Also: truncated files, non-checkpoints and unknown layouts give clear errors naming the file."""

from __future__ import annotations

import argparse
import builtins
import os
import subprocess

import pytest
import torch

from xlmlib.checkpoint.load import read_checkpoint
from xlmlib.checkpoint.mapping import CheckpointError


class _Payload:
    def __init__(self, call, marker):
        self.call, self.marker = call, marker

    def __reduce__(self):
        if self.call == "os.system":
            return os.system, (f"touch {self.marker}",)
        if self.call == "builtins.eval":
            return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)
        return subprocess.call, (["touch", str(self.marker)],)


# The name pickle records for each callable (os.system lives in the `posix` module on Linux).
FORBIDDEN = {"os.system": os.system.__module__ + ".system", "builtins.eval": "builtins.eval",
             "subprocess.call": "subprocess.call"}


@pytest.mark.parametrize("call", sorted(FORBIDDEN))
@pytest.mark.parametrize("where", ["fairseq args", "xlm params"])
def test_malicious_pickle_refused_and_never_run(tmp_path, call, where):
    marker = tmp_path / "pwned"
    evil = _Payload(call, marker)
    if where == "fairseq args":
        payload = {"args": argparse.Namespace(encoder_attention_heads=evil), "model": {"w": torch.zeros(1)}}
    else:
        payload = {"params": {"n_heads": 4, "command": evil}, "model": {"embeddings.weight": torch.zeros(2, 2)}}
    path = tmp_path / "model.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert FORBIDDEN[call] in message and str(path) in message and "forbidden global" in message
    assert not marker.exists()


def test_truncated_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "args": None}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{path}: not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=f"{path}: not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_pickle_of_wrong_type(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match=f"{path}: not a checkpoint.*list"):
        read_checkpoint(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=f"{path}: unknown checkpoint format.*epoch, state_dict"):
        read_checkpoint(path)


def test_folder_without_any_checkpoint(tmp_path):
    (tmp_path / "readme.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="config.json.*model.pt.*pth"):
        read_checkpoint(tmp_path)


def test_bare_safetensors_needs_config(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1)}, str(path))
    with pytest.raises(FileNotFoundError, match="config.json beside it"):
        read_checkpoint(path)


def test_numpy_fields_under_numpy1_names(tmp_path):
    """Files written under numpy 1.x pickle `numpy.core.multiarray._reconstruct`; rewrite the 2.x name to it."""
    import numpy as np

    path = tmp_path / "p.pt"
    torch.save({"mask_scores": np.arange(3.0), "best": np.float64(1.5)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)
    from xlmlib.checkpoint.safe_load import load_pickle

    out = load_pickle(path)
    assert out["mask_scores"].tolist() == [0.0, 1.0, 2.0] and float(out["best"]) == 1.5
