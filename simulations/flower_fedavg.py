"""Flower's own FedAvg strategy (``flwr.serverapp.strategy.FedAvg``) on fedkd's split.

The baseline a Flower user would write: Flower's strategy and simulation engine, a
ClientApp that trains the same architecture from the same initialisation with plain SGD
on fedkd's partition of the client, the same rounds, epochs, learning rate and batch
size.  Compared with fedkd's ``fedavg`` in BENCHMARKS.md (``make bench TABLE=plain-loops``)::

    python simulations/flower_fedavg.py --seed 0 --set model=cnn-s --set dirichlet-alpha=0.1

Prints one JSON line: ALMA (the global model on each client's local test set, unweighted
mean, after the last round), global accuracy (on the public test set), and ALMA per round.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from fedkd.api import load_config  # noqa: E402
from fedkd.config import RunConfig  # noqa: E402
from fedkd.data.public import load_public_data  # noqa: E402
from fedkd.node import ClientNode  # noqa: E402
from fedkd.node.model import init_model  # noqa: E402
from fedkd.simulated_nodes import simulated_node_config  # noqa: E402

CONFIG_ENV = "FEDKD_FLOWER_FEDAVG_CONFIG"


@functools.cache
def run_config() -> RunConfig:
    config, overrides = json.loads(os.environ[CONFIG_ENV])
    return load_config(ROOT / config, overrides)[0]


@functools.cache
def client_data(partition: int) -> tuple[torch.Tensor, ...]:
    cfg = run_config()
    with tempfile.TemporaryDirectory() as state:
        node = simulated_node_config(cfg, partition, state_dir=state)
        data = ClientNode(node, cfg.protocol(), node_id=0).check()
    arrays = (data.train.x, data.train.y, data.test.x, data.test.y)
    return tuple(torch.from_numpy(a) for a in arrays)


def fresh_model() -> torch.nn.Module:
    cfg = run_config()
    public = load_public_data(cfg.public_spec)
    return init_model(cfg.model, input_shape=public.input_shape,
                      num_classes=public.num_classes, run_seed=cfg.seed)  # fmt: skip


client = ClientApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    cfg = run_config()
    partition = int(context.node_config["partition-id"])
    x, y, _, _ = client_data(partition)
    model = fresh_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.optimiser.momentum)
    rnd = int(msg.content["config"]["server-round"])
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + rnd * 101 + partition)
    model.train()
    for _ in range(cfg.local_epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    content = RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"num-examples": len(x)}),
    })  # fmt: skip
    return Message(content=content, reply_to=msg)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, _, tx, ty = client_data(int(context.node_config["partition-id"]))
    model = fresh_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    model.eval()
    with torch.no_grad():
        accuracy = float((model(tx).argmax(dim=1) == ty).float().mean())
    metrics = MetricRecord({"local-accuracy": accuracy, "num-examples": len(ty)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


def unweighted(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """ALMA weighs every client the same, whatever its test set's size."""
    values = [float(r["metrics"]["local-accuracy"]) for r in records]
    return MetricRecord({"local-accuracy": statistics.fmean(values)})


server = ServerApp()
RESULT: dict[str, Any] = {}


@server.main()
def main(grid: Grid, context: Context) -> None:
    cfg = run_config()
    public = load_public_data(cfg.public_spec)
    test_x, test_y = torch.from_numpy(public.test.x), torch.from_numpy(public.test.y)

    def central(round_: int, arrays: ArrayRecord) -> MetricRecord:
        model = fresh_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        model.eval()
        with torch.no_grad():
            accuracy = float((model(test_x).argmax(dim=1) == test_y).float().mean())
        return MetricRecord({"global-accuracy": accuracy})

    strategy = FedAvg(
        min_train_nodes=cfg.num_clients, min_evaluate_nodes=cfg.num_clients,
        min_available_nodes=cfg.num_clients, evaluate_metrics_aggr_fn=unweighted,
    )  # fmt: skip
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord(fresh_model().state_dict()),
        num_rounds=cfg.num_server_rounds, evaluate_fn=central,
    )  # fmt: skip
    last = cfg.num_server_rounds
    RESULT["alma"] = float(result.evaluate_metrics_clientapp[last]["local-accuracy"])
    RESULT["global_acc"] = float(result.evaluate_metrics_serverapp[last]["global-accuracy"])
    RESULT["rounds"] = [
        {"round": r, "alma": float(result.evaluate_metrics_clientapp[r]["local-accuracy"])}
        for r in sorted(result.evaluate_metrics_clientapp)
    ]


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="simulations/mnist.toml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="key=value overrides")
    args = parser.parse_args()
    overrides: dict[str, Any] = {"seed": args.seed}
    for item in args.set:
        key, _, value = item.partition("=")
        numeric = value[:1].isdigit() or value in ("true", "false")
        overrides[key] = json.loads(value) if numeric else value
    os.environ[CONFIG_ENV] = json.dumps([args.config, overrides])
    # Ray's workers unpickle the apps by module name: this file as `flower_fedavg`.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, str(ROOT), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, here)
    import flower_fedavg as this
    from flwr.simulation import run_simulation

    cfg = this.run_config()
    run_simulation(
        server_app=this.server, client_app=this.client, num_supernodes=cfg.num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"logging_level": "ERROR"}},
    )  # fmt: skip
    print(json.dumps({"strategy": "flower-fedavg", "seed": args.seed, **this.RESULT}))


if __name__ == "__main__":
    main_cli()
