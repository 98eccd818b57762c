#!/usr/bin/env bash
# Run the benchmark suite on CUDA (the engine uses mixed precision there) and
# keep the results beside the device name and date (recorded in every JSON).
#
#   bash benchmarks/gpu.sh [--quick] [--only scaling,speed]
#
# Results: benchmarks/results/gpu/*.json and benchmarks/results/gpu/benchmarks.md;
# copied to $OUT when set (the device tool's output folder). Re-render the
# CPU page with the GPU section afterwards: python -m benchmarks.report
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.__version__, torch.cuda.get_device_name(0))"
"$PY" -m benchmarks.run --device cuda "$@"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/gpu"
    cp -r benchmarks/results/gpu/. "$OUT/gpu/"
fi
