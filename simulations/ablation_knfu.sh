#!/usr/bin/env bash
# knfu ablation on MNIST (10 clients, MLP), on tuning seeds 100-102 — never the reporting
# seeds 0-2.  Every variant differs in mechanism; local and mean run on the same seeds.
# Usage: FEDKD_DATA=... bash simulations/ablation_knfu.sh [alphas...]
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS="local,mean,knfu,knfu+include-self=false,knfu+top-m=3,knfu+effectiveness=per-class"
VARIANTS+=",knfu+effectiveness=per-sample,knfu+global-blend=0.5"
for alpha in "${@:-0.1 0.5 1.0}"; do
  .venv/bin/python -m fedkd.cli compare simulations/mnist.toml \
    --strategies "$VARIANTS" --seeds 100,101,102 \
    --set "dirichlet-alpha=$alpha" --name "ablation/mnist-alpha$alpha"
done
