#!/usr/bin/env bash
# The GPU checks of one device session, in one command (written for the device tool's H100/H200, where python3
# holds a CUDA torch and transformers; xlmlib runs from the checkout, no install needed). About 8 minutes:
#   1. scripts/route_check.py: every route of xlmlib/routes.py against the padded route, outputs and gradients,
#      fp32 and bf16; it prints the lines to paste into routes.VERIFIED (GPU, torch version, date) for the
#      routes that passed. No route becomes a CUDA default before its line is there (and in the README);
#   2. the CUDA-only tests: the varlen and nested-tensor kernels against per-row SDPA (forward + backward),
#      the training step under torch.cuda.set_sync_debug_mode("error"), and --compile cudagraphs;
#   3. `bench.py gpu` (the issue's 7 cases, then 8 and 9 as CUDA graphs; MFU) with --sync-check. Each case's
#      row is written when it ends, so a run cut short by the device's time limit keeps the cases before.
# Results go under $OUT (the device tool's folder that comes back), else bench-results/gpu-check.
# CASES=1,2,... picks the benchmark's cases (8 and 9 compile both models with inductor: minutes each).
# SMOKE=1 runs the same on a CPU-only machine (the route check on the CPU, the CUDA tests skip, the benchmark
# runs --smoke) to check the script before spending device time.
set -uo pipefail
out=${OUT:-bench-results/gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1 | tee "$out/machine.txt"
device=cuda
[ "${SMOKE:-0}" = 1 ] && device=cpu
"$py" scripts/route_check.py --device "$device" --out "$out/verified.txt" 2>&1 | tee "$out/routes.log" || status=1
"$py" -m pytest -q -p no:cacheprovider -rs tests/unit/test_routes.py tests/unit/test_sync_free.py \
    tests/train/test_trainer.py -k "cuda" 2>&1 | tee "$out/tests.log" || status=1
smoke=()
[ "${SMOKE:-0}" = 1 ] && smoke=(--smoke --repeats 1 --warmup 1)
cases=()
[ -n "${CASES:-}" ] && cases=(--cases "$CASES")
"$py" scripts/bench.py gpu --sync-check --out "$out/gpu.md" "${smoke[@]}" "${cases[@]}" 2>&1 | tee "$out/bench.log" || status=1
exit $status
