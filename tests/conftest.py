"""Shared fixtures.

`assets` is the one way tests reach ../shared/assets (real vocabularies and text; see PROVENANCE.md there).
XLMLIB_ASSETS overrides the location. Where the folder is absent the test skips with the reason, unless
XLMLIB_REQUIRE_ASSETS=1 (set by .ci/run), which turns that skip into a failure.
"""

import os
from pathlib import Path

import pytest
import torch

import xlmlib

# The suite's models are tiny: one thread runs their small products faster than two (no thread
# hand-offs), and a second process on the machine (the CI runner's, another job's) cannot stall a
# thread team. Subprocesses started by tests inherit the variable.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ASSETS = ROOT.parent / "shared" / "assets"


def pytest_configure(config):
    # An editable install of another clone would shadow this checkout; testing that copy would prove nothing.
    imported = Path(xlmlib.__file__).resolve().parent
    if imported != ROOT / "xlmlib":
        raise pytest.UsageError(f"tests import xlmlib from {imported}, not from this checkout {ROOT / 'xlmlib'}")


@pytest.fixture(scope="session")
def assets() -> Path:
    path = Path(os.environ.get("XLMLIB_ASSETS", DEFAULT_ASSETS))
    if not path.is_dir():
        reason = f"shared assets not found at {path} (set XLMLIB_ASSETS to the folder holding PROVENANCE.md)"
        if os.environ.get("XLMLIB_REQUIRE_ASSETS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
