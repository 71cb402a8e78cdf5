#!/usr/bin/env bash
# The GPU check, prepared for a lent GPU: what "auto" precision picks there, best.py's training throughput
# with and without XLA, an export, and serving latency at batch 1 and 64. At most 5 minutes on one GPU,
# installs included; every step has its own time limit and the script goes on past a failed one.
#
#   bash tools/gpu_check.sh OUT_DIR             # on the GPU machine, from the repo root; figures in OUT_DIR/*.txt
#   bash tools/gpu_check.sh --quick OUT_DIR     # tiny sizes on any machine (DATA_DIR: a tiny corpus): checks the
#                                               # script, not the speed
#
# PYTHON (default python3) runs it; when that cannot import tensorflow and mlc_tf, the script installs the
# repo first (pip install -e .), which needs a package index. DATA_DIR (default ../shared/datasets/flickr14)
# is the corpus RECIPE (default configs/best.py) is timed on; where it is absent, the built-in demo corpus
# with configs/demo.py, which --quick always times.
# The test suite runs --quick on the CPU (tests/test_tools.py), so the script cannot rot before a GPU comes.
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
out=${1:?usage: tools/gpu_check.sh [--quick] OUT_DIR}
mkdir -p "$out"
python=${PYTHON:-python3}
failed=0

step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in OUT_DIR/NAME.txt
  local name=$1 limit=$2; shift 2
  local started=$SECONDS
  if timeout "$limit" "$@" >"$out/$name.txt" 2>&1; then
    echo "== $name: ok ($((SECONDS - started)) s)"
  else
    echo "== $name: FAILED or over ${limit} s ($((SECONDS - started)) s); last lines:"; failed=1
  fi
  grep -v '^[IWE][0-9]\{4\} \|^WARNING: All log messages' "$out/$name.txt" | tail -n 25
}

if ! "$python" -c "import tensorflow, mlc_tf" 2>/dev/null; then
  step install 150 "$python" -m pip install -q -e .
fi

step hardware 60 "$python" -c "
from mlc_tf import hardware
cpu = hardware.read_cpu()
print('CPU', cpu.describe())
print('GPUs', hardware.read_gpus())
choice = hardware.resolve_precision('auto')
print('auto precision:', choice.policy, '--', choice.reason)
"

data=${DATA_DIR:-../shared/datasets/flickr14}
recipe=${RECIPE:-configs/best.py}
if [ ! -d "$data/images" ]; then
  data=$("$python" -c "from mlc_tf.data import builtin; print(builtin.ensure_demo_corpus())" 2>/dev/null | tail -n 1)
  recipe=configs/demo.py  # best.py names flickr14's labels
fi
if [ "$quick" = 1 ]; then recipe=configs/demo.py; fi
if [ "$quick" = 1 ]; then
  sizes=(--num_images=64 --steps=2 --turns=1 --matmul_size=256 --config.data.image_size=16
         --config.model.width=4 --config.model.depth=2 --config.train.batch_size=16)
  serving=(--latency_calls=3 --batch_calls=2)
  demo=(--config.train.epochs=1 --config.data.image_size=16 --config.model.width=4 --config.model.depth=2
        --config.train.batch_size=8)
else
  sizes=(--num_images=2048 --steps=30 --turns=2)
  serving=(--latency_calls=200 --batch_calls=30)
  demo=(--config.train.epochs=3)
fi
for jit in False True; do
  step "train_jit_$jit" 120 "$python" tools/bench_train.py --config="$recipe" --data_dir="$data" \
    "${sizes[@]}" --config.train.jit_compile=$jit
done

demo_data=()
if [ "$quick" = 1 ]; then demo_data=(--data_dir="$data"); fi  # the built-in demo corpus otherwise
step export 120 "$python" -m mlc_tf.cli.train --config=configs/demo.py --workdir="$out/demo" \
  --config.export.base_dir="$out/saved_models" "${demo_data[@]}" "${demo[@]}"
step serving 120 env PYTHONPATH=. "$python" tools/bench_serving.py --workdir="$out/demo" "${serving[@]}"
exit $failed
