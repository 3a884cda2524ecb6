"""examples/finetune_classification.ipynb runs top to bottom on the real German XNLI data (its cells assert
that test accuracy beats the majority-class baseline and that transformers' Auto classes reproduce our
logits on the export) within the issue's budget of 3 minutes on 2 cores. The notebook trains on both cores
(two threads ran its training step 1.6x faster than one on the 2-core machine), so the budget is checked on
the wall time of the whole run, kernel start included; other jobs on the same cores slow it, which the
failure message says. Measured 2026-12-02 on the 2-core runner: see the commit that made this check."""

import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient
pytest.importorskip("matplotlib")  # the notebook plots its loss curve

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 180


def test_finetune_notebook_executes_within_budget(assets):
    nb = nbformat.read(ROOT / "examples" / "finetune_classification.ipynb", as_version=4)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "XLMLIB_ASSETS")}
    # The kernel imports this checkout and finds the assets the way the tests do.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ["XLMLIB_ASSETS"] = str(assets)
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=10 * BUDGET_S, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
        elapsed = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "majority baseline" in text and "\nde " in text  # the per-language table was printed
    assert "max |ours - transformers|" in text
    cpu_s = float(re.search(r"wall, (\d+) s CPU", text).group(1))
    print(f"notebook: {elapsed:.0f} s wall, {cpu_s:.0f} s CPU")
    assert elapsed < BUDGET_S, (f"the notebook ran {elapsed:.0f} s, over its {BUDGET_S} s budget on 2 cores "
                                f"({cpu_s:.0f} s CPU; other jobs on the same cores slow it)")
