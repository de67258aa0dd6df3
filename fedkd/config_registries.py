"""The run config's registry names, checked where a run is started.

:class:`fedkd.config.RunConfig` checks what a config *is* (types, ranges, its own
structure).  Whether a name it picks — strategy and its parameters, partitioner, models,
accountant, clipping mode, swing scorer — is one the registries know is checked here, by
the entry points that start runs (the Python API and so the CLI, the ServerApp), with
"did you mean …?", before anything starts.  Reading a finished run's ``config.json``, or
a node taking its protocol from the run config, consults no registry: a plugin strategy
need not be installed to read its results, and a node never loads the server's
strategies.

Torch is imported only for a model, scorer or clipping mode that is not built in (a
plugin, registered when its package is imported).
"""

from __future__ import annotations

from fedkd.config import ConfigValue, RunConfig
from fedkd.known_names import check_name


def check_registered_names(cfg: RunConfig) -> RunConfig:
    """``cfg`` if every name it picks from a registry is registered; else ``ValueError``."""
    from fedkd.data.partition import SCHEMES
    from fedkd.fusion import FUSION_REGISTRY
    from fedkd.privacy.modes import ACCOUNTANTS

    check_name("strategy", cfg.strategy, FUSION_REGISTRY)
    check_name("partitioner", cfg.partitioner, SCHEMES)
    _check_strategy_params(cfg)
    models = {cfg.model_for(pid) for pid in range(cfg.num_clients)}
    known = _model_names(models)
    for name in sorted(models):
        check_name("model", name, known)
    if FUSION_REGISTRY[cfg.strategy].identical_architectures and len(models) > 1:
        raise ValueError(
            f"{cfg.strategy} averages weights and needs one architecture for every "
            f"client, got {sorted(models)} (client-models = {cfg.client_models!r})"
        )
    check_name("dp-accountant", cfg.dp_accountant, ACCOUNTANTS)
    if cfg.dp_grad_sample_mode:  # empty: the fastest valid mode
        mode = cfg.dp_grad_sample_mode
        check_name("dp-grad-sample-mode", mode, _clipping_mode_names(mode))
    if cfg.swing_scorer:  # empty: off
        check_name("swing-scorer", cfg.swing_scorer, _scorer_names(cfg.swing_scorer))
    return cfg


def _check_strategy_params(cfg: RunConfig) -> None:
    """Every strategy's parameters exist and have its types, used or not: a misspelled
    ``knfu-betaa`` is an error even in a run of another strategy."""
    from fedkd.fusion import FUSION_REGISTRY, param_owner
    from fedkd.plugins import dataclass_params

    grouped: dict[str, dict[str, ConfigValue]] = {}
    for key, value in cfg.strategy_params:
        owner = param_owner(key)
        if owner is not None:
            grouped.setdefault(owner[0], {})[owner[1]] = value
    for name, params in grouped.items():
        dataclass_params(name, FUSION_REGISTRY[name], params)


def _model_names(wanted: set[str]) -> tuple[str, ...]:
    """The known architectures; torch is imported only for a name not built in (a plugin)."""
    from fedkd.model_names import builtin_models

    if wanted <= set(builtin_models()):
        return builtin_models()
    from fedkd.models import MODEL_REGISTRY

    return tuple(MODEL_REGISTRY)


def _scorer_names(wanted: str) -> tuple[str, ...]:
    """The known swing scorers; torch is imported only for a name not built in."""
    from fedkd.privacy.modes import SCORERS

    if wanted in SCORERS:
        return SCORERS
    from fedkd.privacy.scorers import scorer_names

    return tuple(scorer_names())


def _clipping_mode_names(wanted: str) -> tuple[str, ...]:
    """The known clipping modes; torch is imported only for a name not built in."""
    from fedkd.privacy.modes import GRAD_SAMPLE_MODES

    if wanted in GRAD_SAMPLE_MODES:
        return GRAD_SAMPLE_MODES
    from fedkd.privacy.clipping import CLIPPING_MODES

    return tuple(CLIPPING_MODES)
