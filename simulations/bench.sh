#!/usr/bin/env bash
# `make bench`: the strategy comparisons behind the README's result tables.
# Reporting seeds are 0,1,2 (the knfu ablation uses 100-102: simulations/ablation_knfu.sh).
# MNIST needs its IDX files: `fedkd data fetch mnist` (FEDKD_DATA, default ~/.cache/fedkd).
# Usage: bash simulations/bench.sh [digits|heart|mnist|ablation|privacy|precision|audit|dp-throughput|
#                                   <a BENCHMARKS.md table: python simulations/benchmarks.py tables>|all]
#        (make bench TABLE=precision)
set -euo pipefail
cd "$(dirname "$0")/.."
FEDKD=(.venv/bin/python -m fedkd.cli)
ALL="local,mean,dsfl,knfu,median,trimmed-mean,fedavg"
SEEDS=0,1,2
what="${1:-all}"

# The BENCHMARKS.md tables (simulations/benchmarks.py): one of them, or all with the rest.
BENCHMARK_TABLES=$(.venv/bin/python simulations/benchmarks.py tables)
if [[ " $BENCHMARK_TABLES " == *" $what "* ]]; then
  .venv/bin/python simulations/benchmarks.py run "$what"
  exit 0
fi

if [[ $what == digits || $what == all ]]; then
  for alpha in 0.1 0.5 1.0; do
    "${FEDKD[@]}" compare simulations/digits.toml --reuse --overwrite --strategies "$ALL" --seeds "$SEEDS" \
      --set "dirichlet-alpha=$alpha" --set output-dir=runs/bench --name "digits-alpha$alpha"
  done
fi
if [[ $what == heart || $what == all ]]; then
  "${FEDKD[@]}" compare simulations/heart.toml --reuse --overwrite --strategies "$ALL" --seeds "$SEEDS" \
    --set output-dir=runs/bench --name "heart-natural"
fi
if [[ $what == mnist || $what == all ]]; then
  "${FEDKD[@]}" data fetch mnist
  for alpha in 0.1 0.5 1.0; do
    "${FEDKD[@]}" compare simulations/mnist.toml --reuse --overwrite --strategies "$ALL" --seeds "$SEEDS" \
      --set "dirichlet-alpha=$alpha" --set output-dir=runs/bench --name "mnist-alpha$alpha"
  done
fi
if [[ $what == ablation || $what == all ]]; then
  bash simulations/ablation_knfu.sh
fi
if [[ $what == privacy || $what == all ]]; then
  # Privacy–utility: DP-SGD at ε ∈ {1, 3, 8} (δ = 1e-5, PRV) against no DP (ε = ∞).
  "${FEDKD[@]}" data fetch mnist
  DP="knfu+dp=true+dp-target-epsilon"
  "${FEDKD[@]}" compare simulations/mnist.toml --reuse --overwrite --seeds "$SEEDS" \
    --strategies "$DP=1,$DP=3,$DP=8,knfu" --set dirichlet-alpha=0.5 --set output-dir=runs/privacy --name "mnist-alpha0.5"
fi
if [[ $what == precision || $what == all ]]; then
  # Payload precision: int8 and fp16 soft labels against fp32 (knfu, 3 seeds).
  "${FEDKD[@]}" data fetch mnist
  for dataset in digits mnist; do
    "${FEDKD[@]}" compare "simulations/$dataset.toml" --reuse --overwrite --seeds "$SEEDS" \
      --strategies "knfu,knfu+payload-dtype=fp16,knfu+payload-dtype=int8" \
      --set output-dir=runs/precision --name "$dataset"
  done
fi
if [[ $what == audit || $what == all ]]; then
  bash simulations/audit_mnist.sh
fi
if [[ $what == dp-throughput || $what == all ]]; then
  .venv/bin/python simulations/bench_conv_grad_sample.py
  .venv/bin/python simulations/bench_secure_noise.py
  .venv/bin/python simulations/bench_dp_throughput.py
  .venv/bin/python simulations/bench_dp_throughput.py --models cnn-m,cnn-s --batch 64 \
    --out simulations/results/dp_throughput_b64.json
fi
if [[ $what == all ]]; then
  .venv/bin/python simulations/benchmarks.py run all
fi
.venv/bin/python simulations/collect.py runs/bench runs/ablation runs/privacy runs/precision > simulations/results/RESULTS.md
echo "tables: simulations/results/RESULTS.md"
