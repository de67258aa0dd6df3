"""Run configuration: parsed once, where it enters, from flat kebab-case keys.

The same keys come from ``[tool.flwr.app.config]``, a simulation TOML file, ``--set`` on
the command line, or Flower's ``--run-config``.  Values are data only; nothing in a config
can name code to execute beyond picking registered strategies and models by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedkd.data.public import PublicDataSpec
from fedkd.distill.settings import DistillConfig, OptimiserConfig
from fedkd.known_names import check_device, check_name, unknown_name
from fedkd.node.config import resolve_paths
from fedkd.node.protocol import RunProtocol
from fedkd.privacy.policy import PrivacyRequest
from fedkd.privacy.recipe import PrivateTraining
from fedkd.privacy.swing_config import SwingConfig
from fedkd.wire.types import WireDType

ConfigValue = bool | int | float | str
REGISTRY_OFF = "off"
STRATEGY_PARAMS_KEY = "strategy-params"
"""One declared key that carries every strategy parameter through Flower, which refuses
undeclared run-config keys: ``strategy-params = "knfu-beta=10 knfu-top-m=3"``.  fedkd's own
configs may also write the parameters as keys of their own (``knfu-beta = 10``)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated; ``to_flat()`` gives back the kebab-case form."""

    run_name: str = "run"
    dataset: str = "digits"
    num_clients: int = 10
    partitioner: str = "dirichlet"
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    transfer_size: int = 0
    """Public anchors in the transfer set (0: the default, :func:`fedkd.privacy.recipe.
    run_defaults`, as for ``model``, ``num-server-rounds`` and ``distill-epochs``)."""
    anchors_per_round: int = 0
    local_test_fraction: float = 0.2
    """The share of each simulated node's records held out as its local test set (0: every
    record trains, as a central reference run wants; local accuracy is then not measured)."""
    min_local_test: int = 100
    """The stated minimum of own test records per node: below it a node's local accuracy
    is flagged ``too_few`` in summary.json, with its 95 % interval.  Local test sets are
    never topped up from public rows."""
    max_train_per_client: int = 0
    global_test_size: int = 0
    """Public test images the global accuracy is measured on: 0 = all of them; k = a fixed
    subset of k, the same for every seed and strategy (evaluation can cost more than a CNN's
    local training on a CPU)."""
    clients_per_round: int = 0
    """Nodes asked in each training round, drawn afresh every round (0 = all of them);
    the final evaluation asks every node (:mod:`fedkd.participation`)."""
    strategy: str = ""
    """The fusion strategy ("": the default, ``knfu``; ``mean`` under DP on MNIST-like images)."""
    strategy_params: tuple[tuple[str, ConfigValue], ...] = ()
    num_server_rounds: int = 0
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    distill_epochs: int = -1
    """Distillation epochs a round (0: none; -1: the default)."""
    distill_temperature: float = 2.0
    distill_kl_weight: float = 1.0
    distill_ce_weight: float = 1.0
    fusion_sharpen: float = 0.0
    """T_s: every fused target sharpened as softmax(log F / T_s) (1: as fused; 0: the
    default, :data:`fedkd.privacy.recipe.RECIPE_FUSION_SHARPEN` under DP, else 1)."""
    model: str = ""
    """Every client's architecture; "" takes the default (:func:`fedkd.privacy.recipe.
    run_defaults`: ScatterNet + linear under DP on MNIST-like images, else ``mlp-m``)."""
    client_models: str = ""
    payload_dtype: str = "fp32"
    max_payload_bytes: int = 64 * 1024 * 1024
    reply_timeout: float = 600.0
    startup_timeout: float = 300.0
    seed: int = 0
    device: str = "auto"
    output_dir: str = "runs"
    data_dir: str = ""
    public_data: str = ""
    dp: bool = False
    """DP-SGD on; implied by ``dp-target-epsilon`` or ``dp-noise-multiplier`` > 0."""
    dp_target_epsilon: float = 0.0
    dp_noise_multiplier: float = 0.0
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 0.1
    """C, DP-SGD's per-sample clipping norm (:data:`fedkd.privacy.recipe.RECIPE_MAX_GRAD_NORM`)."""
    dp_accountant: str = "prv"
    dp_grad_sample_mode: str = ""
    dp_physical_batch_size: int = 256
    dp_batch_size: int = 0
    """DP-SGD's logical batch (0: the recipe's, :mod:`fedkd.privacy.recipe`)."""
    dp_lr: float = 0.0
    """DP-SGD's learning rate (0: the recipe's)."""
    dp_local_epochs: int = 0
    """DP-SGD epochs per round (0: the recipe's multiple of ``local-epochs``)."""
    swing_scorer: str = ""
    swing_max_temperature: float = 8.0
    swing_noise: str = "gaussian"
    swing_noise_scale: float = 0.0
    release_top_k: int = 0
    swing_receive: bool = False
    privacy_registry: str = ""
    overwrite: bool = False
    resume: bool = True
    record_releases: bool = False
    node_keys: str = ""
    extra: tuple[tuple[str, ConfigValue], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not self.dp and (self.dp_target_epsilon > 0 or self.dp_noise_multiplier > 0):
            # A budget or σ asks for DP: Flower passes every declared key, so ``dp = false``
            # here is the default, never a decision, and privacy is never silently off.
            object.__setattr__(self, "dp", True)
        self._take_defaults()
        positive = ("num_clients", "num_server_rounds", "batch_size", "max_payload_bytes")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{_kebab(name)} must be > 0, got {getattr(self, name)}")
        if self.local_epochs < 0 or self.distill_epochs < 0:
            raise ValueError("local-epochs and distill-epochs must be >= 0")
        check_name("payload-dtype", self.payload_dtype, [d.value for d in WireDType])
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        self._check_ranges()
        self._check_run_name()
        _ = self.distill  # builds, and so validates, the distillation settings
        check_device("device", self.device)
        self._check_client_models()
        self._check_privacy()

    def _take_defaults(self) -> None:
        """Keys left at "the default" take the run's (DP has defaults of its own); the
        resolved values are what the run records and hands its nodes."""
        from fedkd.privacy.recipe import run_defaults

        defaults = run_defaults(dp=self.dp, dataset=self.dataset)
        unset = {
            "strategy": self.strategy == "",
            "model": self.model == "",
            "num_server_rounds": self.num_server_rounds == 0,
            "transfer_size": self.transfer_size == 0,
            "distill_epochs": self.distill_epochs == -1,
        }
        for name, take in unset.items():
            if take:
                object.__setattr__(self, name, getattr(defaults, name))

    def _check_ranges(self) -> None:
        """Every numeric key within what it means (the message names what is allowed)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{_kebab(f.name)} must be a finite number, got {value}")
        at_least_zero = (
            "min_local_test",
            "max_train_per_client",
            "global_test_size",
            "clients_per_round",
            "anchors_per_round",
            "seed",
            "dp_batch_size",
            "dp_local_epochs",
        )
        for name in at_least_zero:
            if getattr(self, name) < 0:
                raise ValueError(f"{_kebab(name)} must be >= 0, got {getattr(self, name)}")
        if self.clients_per_round > self.num_clients:
            raise ValueError(
                f"clients-per-round must be <= num-clients ({self.num_clients}), got "
                f"{self.clients_per_round} (0 asks every node)"
            )
        if self.classes_per_client < 1:
            raise ValueError(f"classes-per-client must be >= 1, got {self.classes_per_client}")
        if not 0 <= self.local_test_fraction < 1:
            raise ValueError(
                f"local-test-fraction must be in [0, 1), got {self.local_test_fraction}"
            )
        if not self.transfer_size > 0:
            raise ValueError(f"transfer-size must be > 0, got {self.transfer_size}")
        if not 0 < self.dirichlet_alpha < math.inf:
            raise ValueError(f"dirichlet-alpha must be > 0 and finite, got {self.dirichlet_alpha}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 < self.reply_timeout < math.inf:
            raise ValueError(f"reply-timeout must be > 0 seconds, got {self.reply_timeout}")
        if not 0 <= self.startup_timeout < math.inf:
            raise ValueError(f"startup-timeout must be >= 0 seconds, got {self.startup_timeout}")
        if not 0 <= self.fusion_sharpen <= 1:
            raise ValueError(
                f"fusion-sharpen must be in (0, 1] (0: the default), got {self.fusion_sharpen}"
            )
        if not 0 < self.distill_temperature < math.inf:
            raise ValueError(
                f"distill-temperature must be > 0 and finite, got {self.distill_temperature}"
            )

    def _check_run_name(self) -> None:
        """A run name is one folder under output-dir: no separators, never climbing out."""
        name = self.run_name
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                f"run-name {name!r} must be one folder name under output-dir "
                "(not empty, no '/' or '\\', not '.' or '..')"
            )

    def _check_privacy(self) -> None:
        from fedkd.privacy.swing_config import NOISE_LAWS

        if self.dp:
            if not (self.dp_target_epsilon > 0 or self.dp_noise_multiplier > 0):
                raise ValueError(
                    "dp = true needs dp-target-epsilon > 0 (σ calibrated for the whole "
                    "federation) or a fixed dp-noise-multiplier > 0"
                )
            if not 0 < self.dp_delta < 1:
                raise ValueError(f"dp-delta must be in (0, 1), got {self.dp_delta}")
            if not self.dp_max_grad_norm > 0 or self.dp_physical_batch_size <= 0:
                raise ValueError("dp-max-grad-norm and dp-physical-batch-size must be > 0")
        if self.dp_target_epsilon < 0 or self.dp_noise_multiplier < 0:
            raise ValueError("dp-target-epsilon and dp-noise-multiplier must be >= 0")
        if self.dp_lr < 0:
            raise ValueError(f"dp-lr must be >= 0 (0: the recipe's), got {self.dp_lr}")
        check_name("swing-noise", self.swing_noise, NOISE_LAWS)
        _ = self.swing  # builds, and so validates, the swing settings

    def _check_client_models(self) -> None:
        """``client-models`` names clients of this run; whether its architectures (and
        the strategy, scorer, clipping mode …) are registered is checked where a run
        starts (:mod:`fedkd.config_registries`), not by every reader of a config."""
        for pid in self._client_models():
            if pid >= self.num_clients:
                raise ValueError(
                    f"client-models names client {pid}, but num-clients is {self.num_clients} "
                    f"(clients 0 … {self.num_clients - 1})"
                )

    # --- derived views --------------------------------------------------------------------

    @property
    def public_spec(self) -> PublicDataSpec:
        """The public data: the bundle ``public-data`` names, else ``dataset``'s public split."""
        return PublicDataSpec(
            dataset=self.dataset,
            transfer_size=self.transfer_size,
            data_dir=self.data_dir,
            bundle=self.public_data,
        )

    @property
    def optimiser(self) -> OptimiserConfig:
        return OptimiserConfig(lr=self.lr, momentum=self.momentum, batch_size=self.batch_size)

    @property
    def distill(self) -> DistillConfig:
        return DistillConfig(
            temperature=self.distill_temperature,
            epochs=self.distill_epochs,
            kl_weight=self.distill_kl_weight,
            ce_weight=self.distill_ce_weight,
        )

    @property
    def fusion_sharpening(self) -> float:
        """The sharpening temperature in force: ``fusion-sharpen``, else the default."""
        if self.fusion_sharpen:
            return self.fusion_sharpen
        from fedkd.privacy.recipe import RECIPE_FUSION_SHARPEN

        return RECIPE_FUSION_SHARPEN if self.dp else 1.0

    @property
    def swing(self) -> SwingConfig | None:
        """Swing release settings, or None when releases are plain softmax(z / τ)."""
        if not (self.swing_scorer or self.swing_noise_scale > 0 or self.release_top_k > 0):
            return None
        return SwingConfig(
            base_temperature=self.distill_temperature,
            max_temperature=max(self.swing_max_temperature, self.distill_temperature),
            noise=self.swing_noise,
            noise_scale=self.swing_noise_scale,
            top_k=self.release_top_k,
        )

    @property
    def claims_dp(self) -> bool:
        """Whether releases are post-processing of the DP model only (so ε is reported).

        A swing scorer that reads private records breaks that: the release then depends
        on private data outside DP-SGD, and no ε may be claimed for it.
        """
        if not self.dp:
            return False
        from fedkd.privacy.scorers import make_scorer

        return not (self.swing_scorer and make_scorer(self.swing_scorer).reads_private_records)

    @property
    def registry_path(self) -> Path | None:
        """The server's node registry: ``privacy-registry``, by default
        ``<output-dir>/privacy-registry.db`` (shared by every run there); ``"off"``: none."""
        if self.privacy_registry == REGISTRY_OFF:
            return None
        if self.privacy_registry:
            return Path(self.privacy_registry).expanduser()
        return Path(self.output_dir).expanduser() / "privacy-registry.db"

    @property
    def wire_dtype(self) -> WireDType:
        return WireDType(self.payload_dtype)

    @property
    def privacy_request(self) -> PrivacyRequest:
        """The privacy the run asks of its nodes (each node's policy decides)."""
        return PrivacyRequest(
            dp=self.dp,
            target_epsilon=self.dp_target_epsilon,
            noise_multiplier=self.dp_noise_multiplier,
            delta=self.dp_delta,
            max_grad_norm=self.dp_max_grad_norm,
            accountant=self.dp_accountant,
            swing_scorer=self.swing_scorer,
        )

    @property
    def private_training(self) -> PrivateTraining:
        return PrivateTraining(
            num_server_rounds=self.num_server_rounds,
            local_epochs=self.local_epochs,
            momentum=self.momentum,
            dp_local_epochs=self.dp_local_epochs,
            dp_batch_size=self.dp_batch_size,
            dp_lr=self.dp_lr,
            dp_physical_batch_size=self.dp_physical_batch_size,
            dp_grad_sample_mode=self.dp_grad_sample_mode,
        )

    def protocol(self) -> RunProtocol:
        """What a node of this run receives: the protocol, none of the server's settings."""
        return RunProtocol(
            fingerprint=self.fingerprint(),
            seed=self.seed,
            num_server_rounds=self.num_server_rounds,
            max_payload_bytes=self.max_payload_bytes,
            public=self.public_spec,
            model=self.model,
            privacy=self.privacy_request,
            optimiser=self.optimiser,
            local_epochs=self.local_epochs,
            private_training=self.private_training,
            distill=self.distill,
            swing=self.swing,
            swing_receive=self.swing_receive,
            global_test_size=self.global_test_size,
        )

    def fusion_params(self) -> dict[str, ConfigValue]:
        """Strategy parameters: ``knfu-top-m = 3`` → ``{"top_m": 3}`` for strategy knfu."""
        from fedkd.fusion import param_owner

        params: dict[str, ConfigValue] = {}
        for key, value in self.strategy_params:
            owner = param_owner(key)
            if owner is not None and owner[0] == self.strategy:
                params[owner[1]] = value
        return params

    def model_for(self, partition_id: int) -> str:
        """Architecture of client ``partition_id``: ``client-models = "0:cnn-s,3:mlp-l"``."""
        return self._client_models().get(partition_id, self.model)

    def _client_models(self) -> dict[int, str]:
        """``client-models`` as partition id → architecture (each id at most once)."""
        mapping: dict[int, str] = {}
        for item in filter(None, (s.strip() for s in self.client_models.split(","))):
            pid, sep, name = item.partition(":")
            if not sep or not (pid.strip().isascii() and pid.strip().isdigit()) or not name.strip():
                raise ValueError(f"client-models entry {item!r} is not 'partition-id:model'")
            if int(pid) in mapping:
                raise ValueError(f"client-models names client {int(pid)} twice")
            mapping[int(pid)] = name.strip()
        return mapping

    def to_flat(self) -> dict[str, ConfigValue]:
        """Every key, strategy parameters as keys of their own (config.json, comparisons)."""
        flat = self._declared()
        flat.update(dict(self.strategy_params))
        flat.update(dict(self.extra))
        return flat

    def fingerprint(self) -> str:
        """What makes two runs the same run: every key except how long to wait, whether
        to replace or resume, and where the server's registry lives (simulations place it
        in the run's own folder)."""
        operational = {"overwrite", "resume", "reply-timeout", "startup-timeout"}
        operational.add("privacy-registry")
        kept = {k: v for k, v in self.to_flat().items() if k not in operational}
        canonical = json.dumps(kept, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_flower(self) -> dict[str, ConfigValue]:
        """The keys Flower accepts: declared ones, strategy parameters packed in one."""
        flat = self._declared()
        flat[STRATEGY_PARAMS_KEY] = " ".join(
            f"{key}={_toml_value(value)}" for key, value in self.strategy_params
        )
        return flat

    def _declared(self) -> dict[str, ConfigValue]:
        return {
            _kebab(f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("strategy_params", "extra")
        }


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _toml_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


_FIELDS = {
    _kebab(f.name): f
    for f in dataclasses.fields(RunConfig)
    if f.name not in ("strategy_params", "extra")
}


RUN_CONFIG_KEYS = frozenset(_FIELDS)


class ConfigTypeError(ValueError, TypeError):
    """A config value of the wrong type (``'3'`` or ``2.0`` for an integer, ``1`` for a
    bool): a ``TypeError`` to Python callers, and a ``ValueError`` like every other
    config error (the CLI's one line and exit 2)."""


def parse_run_config(raw: Mapping[str, Any], *, strict: bool = False) -> RunConfig:
    """Build a :class:`RunConfig` from flat kebab-case keys, checking types.

    ``strict`` (the Python API, config files): every value has its key's type exactly
    (an int is accepted for a float; a bool is never a number; ``'3'`` is not an int).
    Otherwise text is coerced (``"7"`` → 7), as values from Flower's run config may be.
    """
    values: dict[str, Any] = {}
    strategy_params: dict[str, ConfigValue] = {}
    extra: dict[str, ConfigValue] = {}
    from fedkd.fusion import param_owner

    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigTypeError(f"config keys are strings, got {key!r}")
        if key == STRATEGY_PARAMS_KEY:
            strategy_params.update(_unpack_strategy_params(value))
        elif key in _FIELDS:
            check = _exact if strict else _coerce
            values[_FIELDS[key].name] = check(key, value, _FIELDS[key].default)
        elif param_owner(key) is not None:
            strategy_params[key] = _scalar(key, value)
        elif key.startswith("x-"):
            extra[key] = _scalar(key, value)
        else:
            raise ValueError(
                unknown_name(
                    "config key",
                    key,
                    known_config_keys(),
                    hint="see RunConfig in fedkd/config.py for every key",
                )
            )
    return RunConfig(
        **values,
        strategy_params=tuple(sorted(strategy_params.items())),
        extra=tuple(sorted(extra.items())),
    )


def known_config_keys() -> list[str]:
    """Every key a run config may hold: its own, and every strategy's parameters."""
    from fedkd.fusion import FUSION_REGISTRY

    keys = [*RUN_CONFIG_KEYS, STRATEGY_PARAMS_KEY]
    for name, cls in FUSION_REGISTRY.items():
        if dataclasses.is_dataclass(cls):
            keys += [f"{name}-{_kebab(f.name)}" for f in dataclasses.fields(cls)]
    return sorted(keys)


def _unpack_strategy_params(packed: Any) -> dict[str, ConfigValue]:
    """``"knfu-beta=10 knfu-top-m=3"`` → ``{"knfu-beta": 10, "knfu-top-m": 3}``."""
    from fedkd.fusion import param_owner

    if not isinstance(packed, str):
        raise ValueError(f"{STRATEGY_PARAMS_KEY} must be a string, got {packed!r}")
    out: dict[str, ConfigValue] = {}
    for item in shlex.split(packed):
        key, value = parse_override(item)
        if param_owner(key) is None:
            raise ValueError(f"{STRATEGY_PARAMS_KEY}: {key!r} is no strategy's parameter")
        out[key] = value
    return out


def _scalar(key: str, value: Any) -> ConfigValue:
    if not isinstance(value, bool | int | float | str):
        raise ConfigTypeError(
            f"{key} must be a bool, number or string, got {value!r} ({type(value).__name__})"
        )
    return value


def _exact(key: str, value: Any, default: Any) -> Any:
    """``value`` if it has the type of ``default`` (an int widened for a float)."""
    value = _scalar(key, value)
    kind = type(default)
    if kind is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif kind is float:
        ok, wanted = isinstance(value, int | float) and not isinstance(value, bool), "a number"
        value = float(value) if ok else value
    else:
        ok, wanted = isinstance(value, str), "a string"
    if not ok:
        raise ConfigTypeError(f"{key} must be {wanted}, got {value!r} ({type(value).__name__})")
    return value


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``, text converted (``"7"`` → 7, ``"true"``)."""
    value = _scalar(key, value)
    kind = type(default)
    if kind is bool:
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigTypeError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) and kind in (int, float):
        raise ConfigTypeError(f"{key} must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigTypeError(f"{key} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigTypeError(f"{key} must be an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigTypeError(f"{key} must be a number, got {value!r}") from None
    return str(value)


def parse_override(text: str) -> tuple[str, ConfigValue]:
    """Parse one ``--set key=value`` (value in TOML syntax, bare strings allowed)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), _scalar(key.strip(), value)


def text_override(text: str) -> tuple[str, ConfigValue]:
    """One ``key=value`` typed at a command line, as the key's type wants it: TOML syntax
    (``lr=0.1``, ``dp=true``); a key that takes text keeps the text as written
    (``run-name=2024`` names the run "2024"); ``true``/``false`` in any case for a bool."""
    key, value = parse_override(text)
    field_ = _FIELDS.get(key)
    if field_ is None or isinstance(value, type(field_.default)):
        return key, value
    if isinstance(field_.default, str):
        raw = text.partition("=")[2].strip()
        return key, value if isinstance(value, str) else raw
    is_bool_text = isinstance(value, str) and value.lower() in ("true", "false")
    if isinstance(field_.default, bool) and is_bool_text:
        return key, str(value).lower() == "true"
    return key, value


def load_simulation_file(
    path: Path, overrides: Mapping[str, ConfigValue] = {}
) -> tuple[RunConfig, dict[str, Any]]:
    """A simulation TOML: the run config (flat keys), and its ``[node]`` table, if any.

    The ``[node]`` table is the simulated nodes' own configuration (data, model, privacy
    policy; see :mod:`fedkd.simulated_nodes`): it never reaches the server.
    """
    with path.open("rb") as fh:
        try:
            doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
    table = dict(doc.get("tool", {}).get("flwr", {}).get("app", {}).get("config", doc))
    nodes = table.pop("node", {})
    if not isinstance(nodes, dict):
        raise ValueError("[node] must be a table of node config keys")
    base = path.resolve().parent
    if isinstance(table.get("public-data"), str) and table["public-data"]:
        table["public-data"] = str(base / Path(table["public-data"]).expanduser())
    return parse_run_config({**table, **overrides}, strict=True), resolve_paths(nodes, base)
