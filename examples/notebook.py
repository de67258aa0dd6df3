# %% [markdown]
# # fedkd from Python
#
# Run it as a script (`.venv/bin/python examples/notebook.py`) or cell by cell in an
# editor that understands `# %%` cells.  Everything here runs offline on scikit-learn's
# handwritten digits in a few minutes on two CPUs.

# %%
from pathlib import Path

import fedkd

CONFIG = Path(__file__).resolve().parents[1] / "simulations" / "digits.toml"
OUT = Path("runs") / "notebook"

# %% [markdown]
# ## One run
#
# Keyword arguments override the config file's keys (`_` for `-`).  `overwrite=True`
# replaces an earlier run of the same name; without it, an existing run is never touched.

# %%
run = fedkd.simulate(
    CONFIG,
    strategy="knfu",
    dirichlet_alpha=0.3,
    num_server_rounds=5,
    output_dir=str(OUT),
    run_name="knfu-alpha0.3",
    overwrite=True,
)
print(f"ALMA {run.alma:.3f} (median {run.summary['alma_median']:.3f}), global {run.global_acc:.3f}")
print("per client:", run.summary["final_local_accuracy_per_client"])
print("results in", run.run_dir)

# %% [markdown]
# `run.metrics` has one row per client per round: accuracies, losses, bytes, status and
# the reason a client was excluded, if it was.

# %%
final = [row for row in run.metrics if row["round"] == run.config.num_server_rounds]
for row in final:
    print(row["partition_id"], row["model"], row["local_accuracy"], row["bytes_up"], row["status"])

# %% [markdown]
# ## A comparison over seeds
#
# Every strategy sees identical partitions and the same local-training budget; with
# `reuse=True` complete runs of identical configs are kept, so re-running this cell after
# adding a strategy only runs the new one.

# %%
table = fedkd.compare(
    CONFIG,
    ["local", "mean", "knfu"],
    seeds=[0, 1],
    name="three-strategies",
    reuse=True,
    overwrite=True,
    num_server_rounds=5,
    output_dir=str(OUT),
)
print(table.table)
for strategy, stats in table.stats.items():
    print(f"{strategy:6s} ALMA {stats['alma'].mean:.3f} ± {stats['alma'].std:.3f}")

# %% [markdown]
# ## Stopping a run from the notebook
#
# Ctrl-C (or the kernel's interrupt) stops a run within seconds and keeps what it had in
# `<output-dir>/incomplete/`.  From another thread, pass a `threading.Event` as `stop=`
# and set it.
