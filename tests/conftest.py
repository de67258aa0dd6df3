"""Every test runs in its own empty directory, so run folders and node ledgers written
under the default relative ``runs/`` never leak between tests or into the checkout.

Integration tests share one Ray cluster (a head started once per test session, stopped by
its process ids at the end): a simulation joins it through ``RAY_ADDRESS`` as it would a
real cluster, instead of starting and stopping a Ray of its own each run (about 6 s of
every simulation).  A test marked ``own_ray`` tests how a run finds or starts its Ray, and
gets no shared cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulation_scripts import load_script


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def shared_ray_cluster() -> Iterator[str]:
    """The address of a one-node Ray cluster offering every core, for the whole session."""
    clusters = load_script("ray_cluster")
    with clusters.local_cluster(nodes=1, cpus_per_node=os.cpu_count() or 1) as cluster:
        yield cluster.address


@pytest.fixture(autouse=True)
def _integration_tests_join_the_shared_ray(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked = request.node.get_closest_marker
    if marked("integration") is None or marked("own_ray") is not None:
        return
    monkeypatch.setenv("RAY_ADDRESS", request.getfixturevalue("shared_ray_cluster"))
