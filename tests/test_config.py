"""Run-config parsing: kebab keys, coercion, clear errors, strategy parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedkd.config import load_simulation_file, parse_override, parse_run_config
from fedkd.config_registries import check_registered_names


def test_defaults_and_coercion() -> None:
    cfg = parse_run_config({"num-clients": "7", "lr": 1, "knfu-include-self": False})
    assert cfg.num_clients == 7 and cfg.lr == 1.0
    assert cfg.fusion_params() == {"include_self": False}
    assert parse_run_config(cfg.to_flat()) == cfg


def test_strategy_params_only_reach_their_strategy() -> None:
    cfg = parse_run_config({"strategy": "dsfl", "dsfl-temperature": 0.3, "knfu-beta": 3.0})
    assert cfg.fusion_params() == {"temperature": 0.3}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"num-clientz": 3}, "unknown config key 'num-clientz'"),
        ({"num-clients": 0}, "num-clients must be > 0, got 0"),
        ({"num-clients": 2.5}, "num-clients must be an integer, got 2.5"),
        ({"payload-dtype": "bf16"}, r"unknown payload-dtype 'bf16'; did you mean 'fp16'\?"),
        ({"client-models": "0=cnn-s"}, "is not 'partition-id:model'"),
        ({"strategy": "fedprox"}, "unknown strategy 'fedprox'"),
        ({"client-models": "1:resnet"}, "unknown model 'resnet'; known: cnn-fedavg"),
        (
            {"strategy": "fedavg", "client-models": "0:cnn-s"},
            "fedavg averages weights and needs one architecture",
        ),
    ],
)
def test_bad_config_is_rejected_with_the_value(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_registered_names(parse_run_config(raw))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"strategy": "fedprox"}, "unknown strategy 'fedprox'"),
        ({"client-models": "1:resnet"}, "unknown model 'resnet'"),
        ({"dp-grad-sample-mode": "hookz"}, "unknown dp-grad-sample-mode 'hookz'"),
        ({"swing-scorer": "entropyy"}, "unknown swing-scorer 'entropyy'"),
        ({"dp-accountant": "gdpp"}, "unknown dp-accountant 'gdpp'"),
        ({"partitioner": "zipf"}, "unknown partitioner 'zipf'"),
        ({"knfu-betaa": 2.0}, r"knfu has no parameter\(s\) \['betaa'\]; did you mean 'beta'\?"),
    ],
)
def test_registry_names_are_checked_where_runs_start_not_where_configs_are_read(
    raw: dict[str, object], message: str, tmp_path: Path
) -> None:
    """A finished run's config (a plugin strategy's, say) reads back without its plugin;
    every entry point that starts a run refuses the unknown name before anything starts."""
    from fedkd.api import load_config

    key, value = next(iter(raw.items()))
    assert parse_run_config(raw).to_flat()[key] == value
    with pytest.raises(ValueError, match=message):
        load_config(raw)


def test_client_models_map_partitions_to_architectures() -> None:
    cfg = parse_run_config({"model": "mlp-m", "client-models": "0:cnn-s, 3:mlp-l"})
    assert [cfg.model_for(i) for i in range(4)] == ["cnn-s", "mlp-m", "mlp-m", "mlp-l"]


def test_overrides_use_toml_values_and_bare_strings() -> None:
    assert parse_override("lr=0.1") == ("lr", 0.1)
    assert parse_override("knfu-include-self=false") == ("knfu-include-self", False)
    assert parse_override("strategy=knfu") == ("strategy", "knfu")
    with pytest.raises(ValueError, match="not key=value"):
        parse_override("lr")


def test_every_simulation_config_parses() -> None:
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "simulations").glob("*.toml")):
        load_simulation_file(path)
    load_simulation_file(root / "pyproject.toml")


def test_pyproject_declares_every_key_with_the_code_defaults() -> None:
    """Flower fuses pyproject defaults into every run: they must equal the code's.

    Strategy parameters travel packed in the one declared ``strategy-params`` key, so a
    new strategy never needs a pyproject entry."""
    import dataclasses
    import tomllib

    from fedkd.config import RunConfig

    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    expected = {k: v for k, v in RunConfig().to_flower().items() if k != "run-name"}
    # Keys declared as "the default" are resolved per run (DP has defaults of its own):
    # pyproject declares the sentinel, which is the dataclass's own default.
    sentinels = {
        "strategy": "", "model": "", "num-server-rounds": 0, "transfer-size": 0,
        "distill-epochs": -1,
    }  # fmt: skip
    fields = {f.name.replace("_", "-"): f.default for f in dataclasses.fields(RunConfig)}
    for key, sentinel in sentinels.items():
        assert declared["config"][key] == fields[key] == sentinel
        expected[key] = sentinel
    config = {k: v for k, v in declared["config"].items() if k != "run-name"}
    assert config == expected


def test_strategy_parameters_round_trip_through_the_one_flower_key() -> None:
    cfg = parse_run_config(
        {
            "strategy": "knfu",
            "knfu-beta": 10,
            "knfu-effectiveness": "per class",
            "mean-weighted": True,
        }
    )
    flower = cfg.to_flower()
    assert not any(k.startswith("knfu-") for k in flower)
    back = parse_run_config(flower)
    assert back == cfg
    assert back.fusion_params() == {"beta": 10, "effectiveness": "per class"}
    with pytest.raises(ValueError, match="'lr' is no strategy's parameter"):
        parse_run_config({"strategy-params": "lr=0.1"})
    # trimmed-mean's parameters never go to mean.
    trimmed = parse_run_config({"strategy": "trimmed-mean", "trimmed-mean-trim-fraction": 0.3})
    assert trimmed.fusion_params() == {"trim_fraction": 0.3}


def test_variant_parameters_set_run_keys_or_strategy_keys() -> None:
    from fedkd.api import variant_overrides

    assert variant_overrides("knfu+top-m=3+dp=true+dp-target-epsilon=1") == {
        "knfu-top-m": 3,
        "dp": True,
        "dp-target-epsilon": 1,
    }


def test_parsing_a_config_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import fedkd.config as c\n"
        "c.parse_run_config({'dp': True, 'dp-target-epsilon': 3.0, 'model': 'cnn-s'})\n"
        "try:\n"
        "    c.parse_run_config({'lr': 0})\n"
        "except ValueError:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'opacus') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_torch_free_model_names_are_the_registrys() -> None:
    from fedkd.model_names import builtin_models
    from fedkd.models import MODEL_REGISTRY

    assert len(builtin_models()) == len(set(builtin_models())) >= 8
    assert sorted(builtin_models()) == sorted(MODEL_REGISTRY)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("distill-temperature", 0, "distill-temperature must be > 0"),
        ("min-local-test", -1, "min-local-test must be >= 0"),
        ("max-train-per-client", -3, "max-train-per-client must be >= 0"),
        ("global-test-size", -1, "global-test-size must be >= 0"),
        ("classes-per-client", 0, "classes-per-client must be >= 1"),
        ("reply-timeout", 0, "reply-timeout must be > 0 seconds"),
        ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
        ("dirichlet-alpha", 0, "dirichlet-alpha must be > 0"),
        ("run-name", "../../x", "must be one folder name under output-dir"),
        ("run-name", "/tmp/x", "must be one folder name under output-dir"),
        ("run-name", "bench/x", "must be one folder name under output-dir"),
        ("run-name", "..", "must be one folder name under output-dir"),
        ("startup-timeout", -1, "startup-timeout must be >= 0 seconds"),
    ],
)
def test_out_of_range_values_are_refused_with_what_is_allowed(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_run_config({key: value})


@pytest.mark.parametrize("key", ["dp-target-epsilon", "dp-noise-multiplier"])
def test_a_privacy_budget_or_noise_turns_dp_on_whatever_dp_says(key: str) -> None:
    # Flower hands over every declared key, so `dp = false` beside a budget is the default
    # speaking: a user who set ε = 3 and forgot `dp` must not train without privacy.
    assert parse_run_config({key: 3.0}).dp is True
    assert parse_run_config({"dp": False, key: 3.0}).dp is True
    assert parse_run_config({}).dp is False


def test_a_run_that_names_no_model_gets_scatternet_under_dp_on_mnist_like_images() -> None:
    from fedkd.privacy.recipe import DP_DEFAULTS

    DP_MODEL = DP_DEFAULTS.model

    assert parse_run_config({"dataset": "mnist"}).model == "mlp-m"
    assert parse_run_config({"dataset": "mnist", "dp-target-epsilon": 3.0}).model == DP_MODEL
    assert (
        parse_run_config({"dataset": "fashion-mnist", "dp": True, "dp-target-epsilon": 1.0}).model
        == DP_MODEL
    )
    # Tabular records and 8×8 digits keep the MLP; a named model is never replaced.
    assert parse_run_config({"dataset": "heart", "dp-target-epsilon": 3.0}).model == "mlp-m"
    assert parse_run_config({"dataset": "digits", "dp-target-epsilon": 3.0}).model == "mlp-m"
    named = {"dataset": "mnist", "dp-target-epsilon": 3.0, "model": "cnn-s"}
    assert parse_run_config(named).model == "cnn-s"
    # The resolved name is what the run records and hands to its nodes.
    assert (
        parse_run_config({"dataset": "mnist", "dp-target-epsilon": 3.0}).to_flat()["model"]
        == DP_MODEL
    )


def test_dp_on_mnist_like_images_takes_the_measured_schedule_unless_a_key_is_set() -> None:
    from fedkd.privacy.recipe import DP_DEFAULTS, PLAIN_DEFAULTS

    plain = parse_run_config({"dataset": "mnist"})
    private = parse_run_config({"dataset": "mnist", "dp-target-epsilon": 3.0})
    assert (plain.num_server_rounds, plain.transfer_size, plain.distill_epochs) == (5, 500, 1)
    assert (private.num_server_rounds, private.transfer_size, private.distill_epochs) == (
        10, 1000, 2,
    )  # fmt: skip
    assert PLAIN_DEFAULTS.model == plain.model and DP_DEFAULTS.model == private.model
    assert (plain.strategy, private.strategy) == ("knfu", "mean")
    # A set key is never replaced, 0 distillation epochs included (0 means none).
    chosen = parse_run_config(
        {"dataset": "mnist", "dp-target-epsilon": 3.0, "num-server-rounds": 3,
         "transfer-size": 200, "distill-epochs": 0}
    )  # fmt: skip
    assert (chosen.num_server_rounds, chosen.transfer_size, chosen.distill_epochs) == (3, 200, 0)
    with pytest.raises(ValueError, match="distill-epochs"):
        parse_run_config({"distill-epochs": -2})


def test_the_audits_plain_preset_trains_without_dp_on_a_config_with_a_budget() -> None:
    from fedkd.audit.presets import preset_overrides

    dp_config = {"dataset": "mnist", "dp-target-epsilon": 3.0}
    assert parse_run_config({**dp_config, **preset_overrides("plain")}).dp is False
    assert parse_run_config({**dp_config, **preset_overrides("dp")}).dp is True


def test_the_torch_free_clipping_modes_and_scorers_are_the_registries() -> None:
    from fedkd.privacy.clipping import CLIPPING_MODES
    from fedkd.privacy.modes import GRAD_SAMPLE_MODES, SCORERS
    from fedkd.privacy.scorers import scorer_names

    assert sorted(GRAD_SAMPLE_MODES) == sorted(CLIPPING_MODES)
    assert {"output-grads", "hooks", "ghost"} <= set(GRAD_SAMPLE_MODES)
    assert sorted(SCORERS) == scorer_names()
    assert {"confidence", "proximity"} <= set(SCORERS)
