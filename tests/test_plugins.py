"""Extension points load through entry points; a broken plugin is logged, never fatal."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import fedkd.plugins
from fedkd.config import parse_run_config
from fedkd.fusion import FUSION_REGISTRY, FusionInput, make_fusion


def test_a_plugin_strategy_registers_and_takes_its_parameters_from_config(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        EntryPoint("first", "tests.plugins.example_strategy", "fedkd.fusion"),
        EntryPoint("broken", "tests.plugins.does_not_exist", "fedkd.fusion"),
    ]
    monkeypatch.setattr(fedkd.plugins, "entry_points", lambda group: entries)
    try:
        with caplog.at_level(logging.ERROR):
            fedkd.plugins.load_entry_points("fedkd.fusion")
        assert "plugin broken" in caplog.text  # logged, and the good one still loaded
        assert "plugin-first" in FUSION_REGISTRY
        cfg = parse_run_config({"strategy": "plugin-first", "plugin-first-sharpen": True})
        assert cfg.fusion_params() == {"sharpen": True}
        assert cfg.to_flower()["strategy-params"] == "plugin-first-sharpen=true"
        strategy = make_fusion(cfg.strategy, **cfg.fusion_params())
        p = np.array([[[0.75, 0.25]], [[0.5, 0.5]]])
        np.testing.assert_allclose(strategy.fuse(FusionInput(p)).targets[1, 0], [0.9, 0.1])
    finally:
        FUSION_REGISTRY.pop("plugin-first", None)


def test_the_example_plugin_strategy_is_the_normalised_geometric_mean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "examples" / "plugin-package" / "src"
    monkeypatch.syspath_prepend(str(source))
    try:
        import fedkd_plugin_example.geometric_mean  # noqa: F401

        strategy = make_fusion("geometric-mean")
        p = np.array([[[0.5, 0.5]], [[0.9, 0.1]]])
        # sqrt(0.45) : sqrt(0.05) = 3 : 1
        fused = strategy.fuse(FusionInput(p)).targets
        np.testing.assert_allclose(fused[:, 0], [[0.75, 0.25], [0.75, 0.25]])
        with pytest.raises(ValueError, match="floor must be in"):
            make_fusion("geometric-mean", floor=0.0)
    finally:
        FUSION_REGISTRY.pop("geometric-mean", None)
