"""docs/extending.md runs as written: its Python blocks register one part of each kind,
and each part then does its job through fedkd's own entry points."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _registries() -> list[dict[str, Any]]:
    from fedkd.data.providers import PROVIDER_REGISTRY
    from fedkd.fusion import FUSION_REGISTRY
    from fedkd.models import MODEL_REGISTRY
    from fedkd.privacy.clipping import CLIPPING_MODES
    from fedkd.privacy.scorers.base import _SCORERS

    return [FUSION_REGISTRY, MODEL_REGISTRY, PROVIDER_REGISTRY, _SCORERS, CLIPPING_MODES]


@pytest.fixture(scope="module")
def registered() -> Iterator[dict[str, Any]]:
    """Run every Python block of the page, in order, in one namespace; afterwards the
    registries are as they were (other tests hold them equal to the built-in files)."""
    before = [dict(registry) for registry in _registries()]
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 5, "one snippet per kind of part"
    # A module of its own, as a plugin's would be (dataclasses look their module up).
    module = types.ModuleType("extending_doc")
    sys.modules[module.__name__] = module
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), module.__dict__)
        yield module.__dict__
    finally:
        for registry, kept in zip(_registries(), before, strict=True):
            registry.clear()
            registry.update(kept)
        del sys.modules[module.__name__]


def test_the_strategy_fuses_by_its_formula(registered: dict[str, Any]) -> None:
    from fedkd.fusion import FUSION_REGISTRY, FusionInput, make_fusion

    assert "max-pool" in FUSION_REGISTRY
    p = np.array([[[0.7, 0.3]], [[0.2, 0.8]]])
    result = make_fusion("max-pool").fuse(FusionInput(soft_labels=p))
    np.testing.assert_allclose(result.targets[0, 0], [0.7 / 1.5, 0.8 / 1.5])


def test_the_model_is_built_by_name(registered: dict[str, Any]) -> None:
    from fedkd.models import ModelSpec, build_model

    model = build_model("mlp-wide", ModelSpec(input_shape=(1, 8, 8), num_classes=10))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_the_provider_loads_and_refuses_with_one_line_per_problem(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    from fedkd.data.providers import DataValidationError, make_provider
    from fedkd.data.public import PublicDataSpec, load_public_data

    public = load_public_data(PublicDataSpec(dataset="digits", transfer_size=100))
    rng = np.random.default_rng(0)
    good = tmp_path / "good.npz"
    np.savez(good, x=rng.normal(size=(100, *public.input_shape)), y=rng.integers(0, 10, 100))
    data = make_provider("npz-file", {"path": str(good)}).load(public)
    # Held out record by record (a fifth on average), never topped up.
    assert len(data.train) + len(data.test) == 100 and 10 <= len(data.test) <= 30
    assert data.min_test == 20
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=rng.normal(size=(10, 3)), y=np.full(10, 99))
    with pytest.raises(DataValidationError) as refused:
        make_provider("npz-file", {"path": str(bad)}).load(public)
    assert len(refused.value.problems) == 2


def test_the_scorer_scores_and_keeps_a_dp_runs_epsilon(registered: dict[str, Any]) -> None:
    from fedkd.config import parse_run_config
    from fedkd.privacy.scorers import make_scorer

    scores = make_scorer("low-entropy").score(
        torch.nn.Linear(4, 3), np.eye(4, dtype=np.float32), None
    )
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    cfg = parse_run_config({"dp": True, "dp-target-epsilon": 3.0, "swing-scorer": "low-entropy"})
    assert cfg.claims_dp


def test_the_clipping_mode_trains_what_hooks_trains(registered: dict[str, Any]) -> None:
    from fedkd.distill.loops import OptimiserConfig
    from fedkd.models import ModelSpec, build_model
    from fedkd.privacy.csprng import ChaCha20Stream
    from fedkd.privacy.dp_sgd import train_private

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, size=64).astype(np.int64)
    states = []
    for mode in ("hooks", "hooks-again"):
        torch.manual_seed(0)
        model = build_model("mlp-s", ModelSpec(input_shape=(1, 8, 8), num_classes=4))
        train_private(
            model,
            x,
            y,
            epochs=1,
            cfg=OptimiserConfig(lr=0.1, batch_size=16),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode=mode,
            randomness=ChaCha20Stream.reproducible("doc"),
        )
        states.append(model.state_dict())
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value)
