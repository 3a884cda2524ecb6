"""The built wheel ships the architecture presets (configs/models/*.toml as xlmlib/presets) and the xlmlib-mini
model (xlmlib/models/xlmlib-mini), so an installed xlmlib finds them outside this checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import xlmlib

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_every_preset(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("xlmlib-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {Path(n).stem for n in names if n.startswith("xlmlib/presets/") and n.endswith(".toml")}
    assert shipped == set(xlmlib.list_presets()) and len(shipped) == 15  # 14 public checkpoints + xlmlib-mini
    mini = {Path(n).name for n in names if n.startswith("xlmlib/models/xlmlib-mini/")}
    assert mini == {"model.safetensors", "config.json", "sentencepiece.bpe.model", "special_tokens_map.json",
                    "tokenizer_config.json", "trim.json", "README.md"}
    assert "xlmlib/cli/__init__.py" in names and not any(n.startswith("tests/") for n in names)
