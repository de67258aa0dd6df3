#!/usr/bin/env bash
# `make bench TABLE=audit`: the privacy audit's measurements on MNIST (see docs/audit.md).
# Swing's settings are chosen on the tuning seed 100; the comparison reports seed 0.
set -euo pipefail
cd "$(dirname "$0")/.."
FEDKD=(.venv/bin/python -m fedkd.cli)
OUT=${AUDIT_OUT:-runs/audit}
"${FEDKD[@]}" data fetch mnist
timed() { local start=$SECONDS; "$@" || echo "exit $? from: $*"; echo "took $((SECONDS - start)) s: $*"; }

# 1. Swing's noise scale, on the tuning seed (never the reporting seed).
timed "${FEDKD[@]}" audit simulations/mnist.toml --overwrite --name swing-tuning \
  --set seed=100 --set "output-dir=$OUT" --candidates 250 --repeats 4 --audit-seed 100 \
  --compare "plain,swing+swing-noise-scale=0.05,swing+swing-noise-scale=0.1,swing+swing-noise-scale=0.3"

# 2. Plain, swing, DP ε = 8 and swing + DP ε = 8 on identical data, canaries and seeds.
timed "${FEDKD[@]}" audit simulations/mnist.toml --overwrite --name compare --report \
  --set "output-dir=$OUT" --candidates 250 --repeats 4 \
  --compare "plain,swing,dp,swing+dp"

# 3. LiRA with 8 shadow runs on plain federated distillation (same canaries as 2).
timed "${FEDKD[@]}" audit simulations/mnist.toml --overwrite --name lira --report \
  --set "output-dir=$OUT" --candidates 250 --repeats 4 --shadows 8 --compare plain

# 4. Negative control: the same canaries drawn, none inserted; LiRA's shadows insert them.
timed "${FEDKD[@]}" audit simulations/mnist.toml --overwrite --name negative-control \
  --set "output-dir=$OUT" --candidates 500 --control negative --shadows 8 --compare plain

# 5. Positive control: ε = 1 claimed, DP noise silently off, 1,000 one-run canaries.
timed "${FEDKD[@]}" audit simulations/mnist.toml --overwrite --name positive-control \
  --set "output-dir=$OUT" --candidates 500 --control positive \
  --set num-server-rounds=5 --set local-epochs=4 --set dp-max-grad-norm=20 \
  --compare "dp+dp-target-epsilon=1"

# 6. One configuration with 8 shadow runs on the demo workload.
timed "${FEDKD[@]}" audit simulations/demo.toml --overwrite --name demo --report \
  --set "output-dir=$OUT" --shadows 8 --compare plain
