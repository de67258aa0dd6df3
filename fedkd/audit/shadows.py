"""Shadow runs for LiRA: the same federation, with other canary coins, in one process.

A shadow is the audited configuration run again by the same protocol code — the
Coordinator on the server's side, a ClientNode per node — with the target inserting a
different half of the candidate canaries.  All shadows run in this process, one after
another, with no Flower transport and no Ray start-up per shadow, which is what makes
enough of them fit a two-core machine.  What each attacker view holds is kept from every
shadow: the releases the server received and the final models of the target and a peer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedkd.audit.canaries import CanarySet
from fedkd.config import RunConfig
from fedkd.coordinator import Coordinator, Delivery
from fedkd.data.public import load_public_data
from fedkd.node.config import NodeConfig
from fedkd.wire.types import ModelWeights
from server.releases import Release, ReleaseLog


@dataclass(frozen=True)
class ShadowRun:
    """One shadow's coins and what each attacker view would hold after it."""

    coin: np.ndarray
    target_model: ModelWeights
    peer_model: ModelWeights
    target_releases: list[Release]


def shadow_coins(canaries: CanarySet, shadows: int, *, seed: int) -> np.ndarray:
    """S × N: each candidate IN in about half of the shadows (references never)."""
    rng = np.random.default_rng([seed, 0x5AD0])
    coins: np.ndarray = (rng.random((shadows, len(canaries.candidate))) < 0.5) & canaries.candidate
    return coins


def run_shadows(
    cfg: RunConfig,
    nodes: list[NodeConfig],
    canaries: CanarySet,
    coins: np.ndarray,
    *,
    target: int,
    peer: int,
    folder: Path,
    progress: Callable[[str], None] = lambda line: None,
) -> list[ShadowRun]:
    """Run one shadow per row of ``coins``; ``nodes`` are the audited run's node configs."""
    runs = []
    for index, coin in enumerate(coins):
        progress(f"shadow {index + 1}/{len(coins)}")
        shadow_dir = folder / f"shadow-{index}"
        shadow_canaries = dataclasses.replace(canaries, coin=coin, inserted=coin.copy())
        path = shadow_canaries.save(shadow_dir / "canaries.npz")
        shadow_nodes = [
            _shadow_node(node, shadow_dir, path if node.partition_id == target else None)
            for node in nodes
        ]
        states, releases = run_in_process(cfg, shadow_nodes, run_id=f"shadow-{index}")
        target_name = shadow_nodes[target].name
        runs.append(
            ShadowRun(
                coin=coin,
                target_model=_final(states, target),
                peer_model=_final(states, peer),
                target_releases=list(releases.by_node.get(target_name, [])),
            )
        )
    return runs


def _shadow_node(node: NodeConfig, folder: Path, canaries: Path | None) -> NodeConfig:
    options = dict(node.data_options)
    if canaries is not None:
        options["canaries"] = str(canaries)
    # Fresh DP randomness in every shadow: with reproducible DP each shadow would draw
    # the audited run's own noise, and scores fitted on them would depend on it — the
    # one-run bound then no longer holds.
    return dataclasses.replace(
        node,
        state_dir=str(folder / "node-state"),
        keep_model=False,
        reproducible_dp=False,
        data_options=tuple(sorted(options.items())),
    )


def _final(states: dict[int, ModelWeights | None], node: int) -> ModelWeights:
    state = states.get(node)
    if state is None:
        raise RuntimeError(f"shadow node {node} ended without a model")
    return state


def run_in_process(
    cfg: RunConfig, nodes: list[NodeConfig], *, run_id: str
) -> tuple[dict[int, ModelWeights | None], ReleaseLog]:
    """The round loop of ``server/app.py`` with every node served in this process."""
    from fedkd.node.client_node import ClientNode

    public = load_public_data(cfg.public_spec)
    releases = ReleaseLog()
    coordinator = Coordinator(
        cfg,
        run_id=run_id,
        transfer=public.transfer,
        num_classes=public.num_classes,
        releases=releases,
    )
    served = {
        node.partition_id: ClientNode(node, cfg.protocol(), node_id=node.partition_id)
        for node in nodes
    }
    ids = sorted(served)
    states: dict[int, ModelWeights | None] = dict.fromkeys(ids)

    def exchange(round_: int, *, train: bool) -> list[Delivery]:
        deliveries = []
        for node_id, request in coordinator.requests(round_, ids).items():
            reply, states[node_id] = served[node_id].handle(request, states[node_id], train=train)
            deliveries.append(Delivery(node_id, reply))
        return deliveries

    coordinator.hello(exchange(0, train=False))
    for round_ in range(1, cfg.num_server_rounds + 2):
        deliveries = exchange(round_, train=round_ <= cfg.num_server_rounds)
        down = {d.node_id: (0, 0) for d in deliveries}
        coordinator.ingest(round_, deliveries, down)
    return states, releases
