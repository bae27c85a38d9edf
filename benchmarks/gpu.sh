#!/usr/bin/env bash
# Every GPU check and timing in one call, for a machine with a CUDA GPU (one lent for a short while):
#   1. the CUDA tests (tests/test_devices.py: the training step's tensors on the GPU, exact draws there,
#      `lgfn fit --trainer.accelerator gpu` and `lgfn sample --device cuda`) and the sampling tests;
#   2. benchmarks/compare_torchgfn.py --device cuda (lgfn vs torchgfn, Lightning overhead);
#   3. benchmarks/step_time.py --device cuda: ms per Algorithm-1 round, eager and compiled, at B = 32, 1,024 and
#      4,096 (TFBind8 and the grid), with read-backs and aten calls per round;
#   4. the default grid and TFBind8 runs on the GPU (model.compile auto: compiled there): wall time, host and GPU
#      peak memory, the run's summary, and the wall time at which the TFBind8 run had found 250 modes.
# Usage: LGFN_DATA_DIR=... bash benchmarks/gpu.sh OUTDIR   (wheels of missing packages in .whl/ are installed
# first where pip cannot reach an index). About 7 minutes on one H200; logs go to OUTDIR.
set -u
out=${1:?give an output folder}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # lgfn from this checkout
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"

echo "== 1. tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py tests/sampling 2>&1 | tee "$out/tests.log" | tail -15

echo "== 2. benchmark"
timeout 300 python3 benchmarks/compare_torchgfn.py --device cuda 2>&1 | tee "$out/benchmark.log" | grep -v "^  run"

echo "== 3. rounds by batch size"
timeout 420 python3 benchmarks/step_time.py --device cuda --tasks tfbind8 grid2 --batch 32 1024 4096 --rounds 50 \
  2>&1 | tee "$out/step_time.log" | grep -v USDT

echo "== 4. default runs on the GPU"
for config in gridworld tfbind8; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/gpu_mem_$config.txt" &
  smi=$!
  start=$(date +%s.%N)
  timeout 240 /usr/bin/env python3 - "$config" "$out" <<'EOF'
import resource, subprocess, sys
config, out = sys.argv[1], sys.argv[2]
cmd = [sys.executable, "-m", "lgfn", "fit", "--config", f"configs/{config}.yaml", "--trainer.accelerator", "gpu", "--trainer.devices", "1",
       "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", f"/tmp/runs/{config}"]
with open(f"{out}/fit_{config}.log", "w") as log:
    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
print(f"{config}: exit {code}, host peak memory {peak:.2f} GB")
EOF
  end=$(date +%s.%N)
  kill $smi 2>/dev/null
  base=$(head -1 "$out/gpu_mem_$config.txt")
  peak=$(sort -n "$out/gpu_mem_$config.txt" | tail -1)
  echo "$config: wall $(python3 -c "print(f'{$end - $start:.1f}')") s, GPU memory used peak ${peak} MiB (idle ${base} MiB)"
  grep -E "modes found|L1|found so far|fit done" "$out/fit_$config.log" | tail -7
done
python3 benchmarks/modes_time.py /tmp/runs/tfbind8 250
