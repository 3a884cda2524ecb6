#!/usr/bin/env bash
# The GPU checks of one device session, in one command (written for the device tool's H200, where python3
# holds a CUDA torch and transformers; xlmlib runs from the checkout, no install needed). About 8 minutes:
#   1. the CUDA-only tests: the varlen_attn route against per-row SDPA (forward + backward, bf16) and the
#      training step under torch.cuda.set_sync_debug_mode("error");
#   2. `bench.py gpu` (the issue's 7 cases and case 8, inference as CUDA graphs; MFU) with --sync-check.
# Results go under $OUT (the device tool's folder that comes back), else bench-results/gpu-check.
# SMOKE=1 runs the same on a CPU-only machine (the CUDA tests skip, the benchmark runs --smoke) to check
# the script before spending device time.
set -uo pipefail
out=${OUT:-bench-results/gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1 | tee "$out/machine.txt"
"$py" -m pytest -q -p no:cacheprovider -rs tests/unit/test_model.py tests/unit/test_sync_free.py -k "cuda" 2>&1 | tee "$out/tests.log"
smoke=()
[ "${SMOKE:-0}" = 1 ] && smoke=(--smoke --repeats 1 --warmup 1)
"$py" scripts/bench.py gpu --sync-check --out "$out/gpu.md" "${smoke[@]}" 2>&1 | tee "$out/bench.log"
