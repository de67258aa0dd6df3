"""FedMD (``mean``) and DS-FL (``dsfl``) as plain PyTorch loops, in one process.

A reader's check that fedkd's figures are not an artefact of its own machinery: the same
protocol written out in one screen of plain PyTorch — no Flower, no messages, no fedkd
round code — on fedkd's exact split (the same partitions, transfer set and public test
set) and the same hyperparameters (from the same run config).  Only the data, the model
architectures and their common initialisation come from fedkd.

Per round r = 1 … R, every client: distils toward the previous round's targets on the
anchors (KL at temperature T, scaled by T², plus cross-entropy on a private minibatch),
is evaluated (local test set, public test set), trains on its private data, and releases
softmax(z/T) on the anchors; the server averages the releases (``mean``) or averages and
sharpens them (``dsfl``: softmax(log(mean)/T_era))::

    python simulations/plain_loops.py --strategy mean --seed 0 --set dirichlet-alpha=0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedkd.allocator import keep_freed_memory  # noqa: E402
from fedkd.api import load_config  # noqa: E402
from fedkd.data.public import load_public_data  # noqa: E402
from fedkd.node import ClientNode  # noqa: E402
from fedkd.node.model import init_model  # noqa: E402
from fedkd.simulated_nodes import simulated_node_config  # noqa: E402


def batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=generator).split(size))


def sgd(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: Any, epochs: int, g: torch.Generator
) -> None:
    opt = sgd(model, cfg.optimiser)
    model.train()
    for _ in range(epochs):
        for idx in batches(len(x), cfg.optimiser.batch_size, g):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def distil(model: nn.Module, anchors: torch.Tensor, targets: torch.Tensor,
           x: torch.Tensor, y: torch.Tensor, cfg: Any, g: torch.Generator) -> None:  # fmt: skip
    opt = sgd(model, cfg.optimiser)
    t, d = cfg.distill_temperature, cfg.distill
    model.train()
    for _ in range(d.epochs):
        private = batches(len(x), cfg.optimiser.batch_size, g)
        for step, idx in enumerate(batches(len(anchors), cfg.optimiser.batch_size, g)):
            log_p = F.log_softmax(model(anchors[idx]) / t, dim=1)
            loss = d.kl_weight * t * t * F.kl_div(log_p, targets[idx], reduction="batchmean")
            if d.ce_weight > 0:
                pidx = private[step % len(private)]
                loss = loss + d.ce_weight * F.cross_entropy(model(x[pidx]), y[pidx])
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


@torch.no_grad()
def release(model: nn.Module, anchors: torch.Tensor, temperature: float) -> torch.Tensor:
    model.eval()
    return F.softmax(model(anchors) / temperature, dim=1)


def aggregate(releases: list[torch.Tensor], strategy: str, era_temperature: float) -> torch.Tensor:
    mean = torch.stack(releases).mean(dim=0)
    if strategy == "mean":
        return mean
    return F.softmax(torch.log(mean.clamp_min(1e-12)) / era_temperature, dim=1)


def run(
    config: str, strategy: str, seed: int, overrides: dict[str, Any], *, threads: int = 1
) -> dict[str, Any]:
    started = time.perf_counter()
    cfg, _ = load_config(ROOT / config, {**overrides, "seed": seed, "strategy": strategy})
    torch.set_num_threads(threads)
    public = load_public_data(cfg.public_spec)
    anchors = torch.from_numpy(public.transfer.x)
    test_x, test_y = torch.from_numpy(public.test.x), torch.from_numpy(public.test.y)
    clients = []
    with tempfile.TemporaryDirectory() as state:
        for k in range(cfg.num_clients):
            node = simulated_node_config(cfg, k, state_dir=state)
            data = ClientNode(node, cfg.protocol(), node_id=0).check()
            model = init_model(node.model or cfg.model, input_shape=public.input_shape,
                               num_classes=public.num_classes, run_seed=cfg.seed)  # fmt: skip
            clients.append((model, *(torch.from_numpy(a) for a in (
                data.train.x, data.train.y, data.test.x, data.test.y))))  # fmt: skip
    era = float(dict(cfg.strategy_params).get("temperature", 0.1))
    loop_started = time.perf_counter()
    targets, history = None, []
    for round_ in range(1, cfg.num_server_rounds + 2):
        releases, local, glob = [], [], []
        for k, (model, x, y, tx, ty) in enumerate(clients):
            g = torch.Generator().manual_seed(seed * 100_003 + round_ * 101 + k)
            if targets is not None:
                distil(model, anchors, targets, x, y, cfg, g)
            local.append(accuracy(model, tx, ty))
            glob.append(accuracy(model, test_x, test_y))
            if round_ <= cfg.num_server_rounds:
                train(model, x, y, cfg, cfg.local_epochs, g)
                releases.append(release(model, anchors, cfg.distill_temperature))
        history.append({"round": round_ - 1, "alma": statistics.fmean(local),
                        "global_acc": statistics.fmean(glob)})  # fmt: skip
        if releases:
            targets = aggregate(releases, strategy, era)
    return {
        "strategy": strategy, "seed": seed, "alma": history[-1]["alma"],
        "global_acc": history[-1]["global_acc"], "rounds": history,
        "loop_s": time.perf_counter() - loop_started, "wall_s": time.perf_counter() - started,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="simulations/mnist.toml")
    parser.add_argument("--strategy", choices=("mean", "dsfl"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="key=value overrides")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    args = parser.parse_args()
    # fedkd's nodes keep freed memory (fedkd/allocator.py); the loop does too, so that a
    # comparison with them measures the framework, not the allocator.
    keep_freed_memory()
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = (
            json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
        )
    print(json.dumps(run(args.config, args.strategy, args.seed, overrides, threads=args.threads)))


if __name__ == "__main__":
    main()
