"""A node's own configuration: its data, its model, its privacy policy, where it keeps state.

It comes from the node's side only: a TOML file (``fedkd node check FILE``; Flower's
``--node-config "config='/etc/fedkd/node.toml'"``), keys given inline in Flower's
``--node-config``, or, in a simulation, the per-node section the simulation writes for
each simulated node.  Flat kebab-case keys::

    name = "cleveland"                 # the node's name: ledgers, logs
    data = "csv"                       # a registered data provider
    data-path = "/data/cleveland.csv"  # provider options: ``data-`` + option
    data-schema = "/data/heart.schema.toml"
    public-data = ""                   # a local copy of the public bundle (else the run's)
    model = ""                         # architecture ("" → the run's ``model``)
    state-dir = "/var/lib/fedkd"       # ledger, local logs
    device = "auto"
    privacy-dp-required = true         # the privacy policy: ``privacy-`` + policy field
    privacy-max-epsilon = 3.0
    privacy-max-delta = 1e-5
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedkd.known_names import check_device, check_name, unknown_name
from fedkd.plugins import Param, typed_param
from fedkd.privacy.policy import PrivacyPolicy

CONFIG_FILE_KEY = "config"
DATA_PREFIX = "data-"
POLICY_PREFIX = "privacy-"
SIMULATED_PROVIDERS = ("partition",)
CANARY_PROVIDER = "with-canaries"
"""The audit's wrapper: another provider's records plus its canaries (simulated when that
provider is)."""
LIFETIME_BUDGET_KEYS = ("privacy-max-epsilon", "privacy-max-delta")


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node decides for itself (parsed once, where it enters)."""

    name: str = "node"
    partition_id: int = 0
    """The node's index in a simulation (its seeds and reports); 0 for a real node."""
    data: str = "partition"
    data_options: tuple[tuple[str, Param], ...] = ()
    public_data: str = ""
    model: str = ""
    state_dir: str = "fedkd-node-state"
    device: str = "auto"
    reproducible_dp: bool = False
    """Seed DP and swing randomness from the run seed instead of fresh OS entropy, so a
    simulation can be replayed; ε is then not valid against anyone who knows the seed.
    Node-local only (no run config can turn it on) and only for simulated data."""
    signing_key: str = ""
    """The node's Ed25519 private key (``fedkd certs node``): every reply is signed with it,
    as a deployment that verifies signatures requires."""
    bundle_sha256: str = ""
    """The app bundles (SHA-256 of the FAB, space-separated) this node agrees to run:
    ``fedkd node launch`` refuses any other before its code is installed or imported."""
    transfer_digest: str = ""
    """The transfer set this node agrees to release knowledge on (``fedkd node check``
    prints it); checked by ``fedkd node launch`` with the installed fedkd, not the bundle."""
    keep_model: bool = False
    """Write the node's model to ``<state-dir>/<name>.model.npz`` after every message (the
    last one is the final model): the hospital keeps what it trained."""
    adversary: str = ""
    """Poison what this node releases (:mod:`fedkd.node.adversary`): a benchmark's
    malicious client.  Simulation only."""
    adversary_profile: str = ""
    """The target's label profile for the ``mimic`` attack: C numbers, space-separated."""
    audit_control_noise_off: bool = False
    """Sabotage for validating an audit (its positive control): DP-SGD runs without noise;
    every ledger row and reply says ``control: no guarantee`` and the store's ε is
    unbounded.  Only on the audit's canary-wrapped simulated data (``fedkd audit
    --control positive`` sets it); any other node refuses to start with it."""
    policy: PrivacyPolicy = field(default_factory=PrivacyPolicy)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\\0") or self.name in {".", ".."}:
            raise ValueError(f"node name {self.name!r} must be a plain file-name-safe word")
        check_device("device", self.device)
        if self.adversary:
            from fedkd.node.adversary import ATTACKS

            check_name("adversary", self.adversary, ATTACKS)
            if not self.simulated:
                raise ValueError("adversary is only for simulated nodes, never a real one")
            if self.adversary == "mimic":
                _ = self.profile()
        if self.reproducible_dp and self.data not in SIMULATED_PROVIDERS:
            raise ValueError(
                f"reproducible-dp is only for simulated data (providers {SIMULATED_PROVIDERS}); "
                f"this node reads {self.data!r}"
            )
        if self.audit_control_noise_off and not (self.data == CANARY_PROVIDER and self.simulated):
            raise ValueError(
                "audit-control-noise-off is the audit's positive control (DP-SGD without "
                "noise): only `fedkd audit --control positive` sets it, on canary-wrapped "
                f"simulated data; this node reads {self.data!r}"
            )
        if not self.simulated and not math.isfinite(self.policy.max_epsilon):
            raise ValueError(lifetime_budget_missing(self))

    @property
    def simulated(self) -> bool:
        """Reads simulated records only (a simulated provider, or canaries around one)."""
        if self.data == CANARY_PROVIDER:
            return dict(self.data_options).get("base", "partition") in SIMULATED_PROVIDERS
        return self.data in SIMULATED_PROVIDERS

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    @property
    def runs_log_path(self) -> Path:
        """Every run the node took part in, one line each."""
        return self.state_path / f"{self.name}.runs.jsonl"

    @property
    def sent_log_path(self) -> Path:
        """What left the node, reply by reply: fields and bytes (never the values)."""
        return self.state_path / f"{self.name}.sent.jsonl"

    @property
    def model_path(self) -> Path:
        return self.state_path / f"{self.name}.model.npz"

    @property
    def ledger_path(self) -> Path:
        return self.state_path / f"{self.name}.ledger.db"

    @property
    def eval_log_path(self) -> Path:
        """Local metrics computed on private data under DP (never sent)."""
        return self.state_path / f"{self.name}.eval.jsonl"

    @property
    def log_path(self) -> Path:
        """The node's own log: why it refused, what was wrong with its data."""
        return self.state_path / f"{self.name}.log"

    def profile(self) -> tuple[float, ...]:
        """``adversary-profile`` as numbers."""
        try:
            values = tuple(float(v) for v in self.adversary_profile.split())
        except ValueError as exc:
            raise ValueError(f"adversary-profile must be numbers: {exc}") from exc
        if not values or min(values) < 0 or sum(values) <= 0:
            raise ValueError("adversary-profile must be C non-negative numbers, not all zero")
        return values

    def to_flat(self) -> dict[str, Param]:
        flat: dict[str, Param] = {
            "name": self.name,
            "partition-id": self.partition_id,
            "data": self.data,
            "public-data": self.public_data,
            "model": self.model,
            "state-dir": self.state_dir,
            "device": self.device,
            "reproducible-dp": self.reproducible_dp,
            "signing-key": self.signing_key,
            "bundle-sha256": self.bundle_sha256,
            "transfer-digest": self.transfer_digest,
            "keep-model": self.keep_model,
            "adversary": self.adversary,
            "adversary-profile": self.adversary_profile,
            "audit-control-noise-off": self.audit_control_noise_off,
        }
        flat.update({f"{DATA_PREFIX}{k}": v for k, v in self.data_options})
        for f in dataclasses.fields(PrivacyPolicy):
            flat[POLICY_PREFIX + f.name.replace("_", "-")] = getattr(self.policy, f.name)
        return flat


_SIMPLE = {
    f.name.replace("_", "-"): f
    for f in dataclasses.fields(NodeConfig)
    if f.name not in ("data_options", "policy")
}
_POLICY = {f.name.replace("_", "-"): f for f in dataclasses.fields(PrivacyPolicy)}


def parse_node_config(raw: Mapping[str, Any]) -> NodeConfig:
    """A :class:`NodeConfig` from flat kebab-case keys (a ``config`` key names a TOML file
    whose keys come first; the other keys override it).

    Raises
    ------
    ValueError
        Unknown key, wrong type, an unreadable file, or an invalid policy.
    """
    merged = dict(raw)
    if CONFIG_FILE_KEY in merged:
        path = Path(str(merged.pop(CONFIG_FILE_KEY))).expanduser()
        merged = {**read_node_file(path), **merged}
    simple: dict[str, Any] = {}
    options: dict[str, Param] = {}
    policy: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _SIMPLE:
            simple[_SIMPLE[key].name] = _typed("node", key, _SIMPLE[key].default, value)
        elif key.startswith(POLICY_PREFIX) and key[len(POLICY_PREFIX) :] in _POLICY:
            f = _POLICY[key[len(POLICY_PREFIX) :]]
            policy[f.name] = _typed("node", key, f.default, value)
        elif key.startswith(DATA_PREFIX):
            options[key[len(DATA_PREFIX) :]] = _scalar(key, value)
        elif key == "num-partitions":
            continue  # Flower's simulation engine sets it on every simulated node
        else:
            known = [*_SIMPLE, *(POLICY_PREFIX + k for k in _POLICY)]
            hint = "data-<option> for the data provider's options; see fedkd/node/config.py"
            raise ValueError(unknown_name("node config key", key, known, hint=hint))
    if policy.get("max_epsilon") == 0:
        policy["max_epsilon"] = math.inf  # 0 in a config file means "no cap"
    config = NodeConfig(
        **simple, data_options=tuple(sorted(options.items())), policy=PrivacyPolicy(**policy)
    )
    if not config.simulated and any(key not in merged for key in LIFETIME_BUDGET_KEYS):
        raise ValueError(lifetime_budget_missing(config))
    return config


def lifetime_budget_missing(config: NodeConfig) -> str:
    """Why a node on real data without a declared lifetime budget may not start."""
    return (
        f"node {config.name} reads real data ({config.data!r}) but declares no lifetime "
        f"budget: set {' and '.join(LIFETIME_BUDGET_KEYS)} in its config"
    )


def lifetime_budget_note(config: NodeConfig) -> str:
    """A simulated node's warning when it has no lifetime budget ("" when it has one)."""
    if not config.simulated or math.isfinite(config.policy.max_epsilon):
        return ""
    return (
        f"simulated node {config.name} has no lifetime budget (privacy-max-epsilon): its "
        "store's ε is unbounded; a node on real data refuses to start without one"
    )


def read_node_file(path: Path) -> dict[str, Any]:
    """The flat keys of a node config TOML file; file names in it are relative to it."""
    if not path.is_file():
        raise ValueError(f"node config file {path} does not exist")
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"node config file {path} is not valid TOML: {exc}") from exc
    nested = sorted(k for k, v in doc.items() if isinstance(v, dict | list))
    if nested:
        raise ValueError(f"node config file {path}: keys must be flat, got tables {nested}")
    return resolve_paths(doc, path.resolve().parent)


def _scalar(key: str, value: Any) -> Param:
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"node config {key} must be a bool, number or string, got {value!r}")
    return value


def _typed(owner: str, key: str, default: Any, value: Any) -> Param:
    value = _scalar(key, value)
    if isinstance(default, bool) and isinstance(value, str) and value in ("true", "false"):
        value = value == "true"  # Flower's --node-config parses values as TOML; be lenient
    return typed_param(owner, key, default, value)


PATH_KEYS = ("data-path", "data-schema", "public-data", "state-dir")
"""Node config keys that name files: relative to the file (or ``[node]`` table) they
are written in."""


def resolve_paths(section: dict[str, Any], base: Path) -> dict[str, Any]:
    """File names in node config keys, made absolute against ``base`` (the file's folder)."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = resolve_paths(value, base)
        elif key in PATH_KEYS and isinstance(value, str) and value:
            out[key] = str(base / Path(value).expanduser())
        else:
            out[key] = value
    return out
