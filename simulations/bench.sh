#!/usr/bin/env bash
# `make bench`: the strategy comparisons behind the README's result tables.
# Reporting seeds are 0,1,2 (the knfu ablation uses 100-102: simulations/ablation_knfu.sh).
# MNIST needs its IDX files: `fedkd data fetch mnist` (FEDKD_DATA, default ~/.cache/fedkd).
# Usage: bash simulations/bench.sh [digits|heart|mnist|ablation|all]
set -euo pipefail
cd "$(dirname "$0")/.."
FEDKD=(.venv/bin/python -m fedkd.cli)
ALL="local,mean,dsfl,knfu,median,trimmed-mean,fedavg"
SEEDS=0,1,2
what="${1:-all}"

if [[ $what == digits || $what == all ]]; then
  for alpha in 0.1 0.5 1.0; do
    "${FEDKD[@]}" compare simulations/digits.toml --reuse --strategies "$ALL" --seeds "$SEEDS" \
      --set "dirichlet-alpha=$alpha" --name "bench/digits-alpha$alpha"
  done
fi
if [[ $what == heart || $what == all ]]; then
  "${FEDKD[@]}" compare simulations/heart.toml --reuse --strategies "$ALL" --seeds "$SEEDS" \
    --name bench/heart-natural
fi
if [[ $what == mnist || $what == all ]]; then
  "${FEDKD[@]}" data fetch mnist
  for alpha in 0.1 0.5 1.0; do
    "${FEDKD[@]}" compare simulations/mnist.toml --reuse --strategies "$ALL" --seeds "$SEEDS" \
      --set "dirichlet-alpha=$alpha" --name "bench/mnist-alpha$alpha"
  done
fi
if [[ $what == ablation || $what == all ]]; then
  bash simulations/ablation_knfu.sh
fi
.venv/bin/python simulations/collect.py runs/bench runs/ablation > simulations/results/RESULTS.md
echo "tables: simulations/results/RESULTS.md"
