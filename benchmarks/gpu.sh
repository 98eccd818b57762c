#!/usr/bin/env bash
# Run the CUDA tests and the whole benchmark suite on CUDA (the engine trains and labels
# in mixed precision there: precision="auto"), and keep the results beside the device name
# and date (also recorded in every JSON's "machine" block).
#
#   bash benchmarks/gpu.sh [--quick] [--only speed,ct,scaling]
#
# Results: benchmarks/results/gpu/*.json, benchmarks/results/gpu/benchmarks.md and
# benchmarks/results/gpu/device.txt (nvidia-smi, torch, date, the CUDA tests' outcome);
# copied to $OUT when set (the device tool's output folder). Re-render the CPU page with
# the GPU section afterwards: python -m benchmarks.report
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
mkdir -p benchmarks/results/gpu
DEVICE_TXT=benchmarks/results/gpu/device.txt
{
    echo "date_utc: $(date -u '+%Y-%m-%d %H:%M UTC')"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} | tee "$DEVICE_TXT"
# the CUDA path is tested first: a failing test stops the run before any number is written
if "$PY" -m pytest tests/test_engine_cuda.py -q -p no:cacheprovider > benchmarks/results/gpu/cuda_tests.log 2>&1; then
    tail -n 1 benchmarks/results/gpu/cuda_tests.log | tee -a "$DEVICE_TXT"
else
    tail -n 30 benchmarks/results/gpu/cuda_tests.log
    echo "CUDA tests failed: no benchmark run" | tee -a "$DEVICE_TXT"
    exit 1
fi
"$PY" -m benchmarks.run --device cuda "$@"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/gpu"
    cp -r benchmarks/results/gpu/. "$OUT/gpu/"
fi
