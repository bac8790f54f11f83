#!/usr/bin/env bash
# What is left to measure on a machine with a CUDA GPU, in one run (~10 minutes on an H200).
# From the repository root, with the environment installed:  bash benchmarks/gpu_check.sh
# Each step prints its own figures; the script stops at the first step that fails.
set -euo pipefail
PY=${PYTHON:-python}
export PYTORCH_NVML_BASED_CUDA_CHECK=1
nvidia-smi --query-gpu=name,memory.total --format=csv || true

echo "== 1. the GPU-only tests: captured steps, shuffles, auto's choice"
$PY -m pytest -q -p no:cacheprovider tests/test_graphs.py tests/test_shuffles.py \
    tests/test_device_choice.py

echo "== 2. one epoch's shuffles: randperm on 16 host threads against the keyed recipe on the GPU"
$PY benchmarks/bench_shuffles.py --sizes 512,8192,100000 --device cuda

echo "== 3. the notebook at N = 512, 8192, 100000: eager, keyed shuffles (equivalence first)"
$PY benchmarks/bench_trainer.py --device cuda --ref-device cpu --inline --configs notebook \
    --sizes 512,8192,100000 --no-compile --workers 0 --check

echo "== 4. the same with the step captured as a CUDA graph"
$PY benchmarks/bench_trainer.py --device cuda --ref-device cpu --inline --configs notebook \
    --sizes 512,8192,100000 --no-compile --workers 0 --check --graphs

echo "== 5. auto's predictions against real times on both devices"
$PY benchmarks/bench_devices.py --sizes 512,2048,8192,100000

echo "== 6. the whole process: --device auto against --device cpu"
for device in cpu auto; do
    store=$(mktemp -d)/store.db
    start=$($PY -c 'import time; print(time.time())')
    $PY -m tui.cli --store "$store" run notebook --seeds auto --device "$device" --json >/dev/null
    $PY -c "import time; print('hp-tui run notebook --seeds auto --device $device:', \
        round(time.time() - $start, 1), 's')"
done
