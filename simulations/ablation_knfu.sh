#!/usr/bin/env bash
# knfu ablation on MNIST (10 clients, MLP), on tuning seeds 100-102 — never the reporting
# seeds 0-2.  Every variant differs in mechanism; local and mean run on the same seeds with
# the same budget.  (top-m=3 and per-class with the reconstruction's β were also run at
# α = 0.1; they matched the reconstruction, so they were dropped to save compute.)  Usage: FEDKD_DATA=... bash simulations/ablation_knfu.sh [alphas...]
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS="local,mean,knfu"                                 # the reconstruction (self included)
VARIANTS+=",knfu+include-self=false"                       # neighbours only
VARIANTS+=",knfu+global-blend=0.5"                         # half personalised, half consensus
VARIANTS+=",knfu+effectiveness=per-class+beta=0.1"         # class experts, near-uniform pairs
VARIANTS+=",knfu+effectiveness=per-sample+beta=0.1"        # confident experts per anchor
VARIANTS+=",knfu+effectiveness=per-sample+beta=1"          # the same, pairs leaning to self
ALPHAS=("$@")
[ ${#ALPHAS[@]} -gt 0 ] || ALPHAS=(0.1 0.5 1.0)
for alpha in "${ALPHAS[@]}"; do
  .venv/bin/python -m fedkd.cli compare simulations/mnist.toml --reuse \
    --strategies "$VARIANTS" --seeds 100,101,102 \
    --set "dirichlet-alpha=$alpha" --name "ablation/mnist-alpha$alpha"
done
