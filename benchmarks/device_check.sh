#!/usr/bin/env bash
# GPU check in one command (about 5-8 minutes on one H100/H200), for a session that has a GPU:
#
#   bash benchmarks/device_check.sh
#
# 1. the CUDA parts of the fast path against the fp32 reference (tests/test_inference.py: bf16,
#    channels_last, torch.compile, CUDA graphs) and `csrip hallucinate` end to end on the GPU;
# 2. benchmarks/bench_sr.py: paper/small/tiny presets, inference at batch 1 and 256 (fp32 eager vs
#    the fast path), one C-SRIP training step at batch 8 and 64 (fp32 vs bf16+channels_last).
# Results: benchmarks/results/<gpu>-<date>.json and .log; copied to $OUT when that is set (the lent
# machines bring $OUT back). Extra arguments go to bench_sr.py (e.g. --presets small tiny).
# Python: $PYTHON, else .venv/bin/python if it sees a GPU, else python3 (the lent machines' PyTorch).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  PY=python3
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch,sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    PY=.venv/bin/python
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # csrip_lib from this checkout, installed or not
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/csrip-inductor-cache}
if ! $PY -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; then
  echo "device_check.sh: $PY sees no CUDA GPU; on a CPU run: $PY benchmarks/bench_sr.py --device cpu" >&2
  exit 2
fi
mkdir -p benchmarks/results
STAMP="$($PY -c 'import torch,re,datetime as d; n=torch.cuda.get_device_name(); print(re.sub("[^a-z0-9]+","-",n.lower()).strip("-")+"-"+d.datetime.now(d.timezone.utc).strftime("%Y-%m-%d"))')"
LOG="benchmarks/results/$STAMP.log"
{
  echo "# device_check $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
  $PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
  echo "## correctness: fast path on CUDA vs fp32, hallucinate on the GPU"
  timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_inference.py tests/test_hallucinate.py
  tests=$?
  echo "## benchmark"
  timeout "${BENCH_TIMEOUT:-420}" $PY benchmarks/bench_sr.py --device cuda --out "benchmarks/results/$STAMP.json" "$@"
  bench=$?
  echo "## exit codes: tests $tests, benchmark $bench (124 = timed out; the JSON keeps the rows measured)"
  [ "$tests" = 0 ] && [ "$bench" = 0 ]
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then cp "$LOG" benchmarks/results/"$STAMP".json "$OUT"/ 2>/dev/null || true; fi
exit "$status"
