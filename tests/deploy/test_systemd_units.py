"""The shipped systemd units run as a non-root user with resource limits and hardening,
and start Flower with TLS, authentication and no runtime dependency installation."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "fedkd" / "deploy" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text().replace("\\\n", " "))
    return parser


SERVICES = sorted(path.name for path in UNITS.glob("*.service"))


def test_every_shipped_service_is_checked() -> None:
    assert SERVICES == [
        "fedkd-fleet-gateway.service",
        "fedkd-launcher@.service",
        "fedkd-superlink-prune.service",
        "fedkd-superlink.service",
        "fedkd-supernode@.service",
    ]
    assert sorted(path.name for path in UNITS.glob("*.timer")) == ["fedkd-superlink-prune.timer"]


@pytest.mark.parametrize("name", SERVICES)
def test_units_are_non_root_limited_and_hardened(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["User"] == "fedkd" and service["User"] != "root"
    for limit in ("MemoryMax", "CPUQuota", "TasksMax", "LimitNOFILE"):
        assert service.get(limit), limit
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict" and service["UMask"] == "0077"
    assert "--insecure" not in service["ExecStart"]


def test_the_superlink_requires_tls_and_node_authentication() -> None:
    start = _unit("fedkd-superlink.service")["Service"]["ExecStart"]
    for flag in (
        "--ssl-certfile",
        "--ssl-keyfile",
        "--ssl-ca-certfile",
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
    ):
        assert flag in start, flag  # fmt: skip


def test_a_supernode_authenticates_and_reads_its_own_config() -> None:
    start = _unit("fedkd-supernode@.service")["Service"]["ExecStart"]
    assert "--root-certificates" in start and "--auth-supernode-private-key" in start
    assert "/etc/fedkd/keys/%i.auth" in start
    assert "config='/etc/fedkd/%i.node.toml'" in start
    # Several Environment= lines (configparser keeps only the last): read them as text.
    lines = (UNITS / "fedkd-supernode@.service").read_text().splitlines()
    environment = {line.split("=", 1)[1] for line in lines if line.startswith("Environment=")}
    assert "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1" in environment
    assert "FLWR_TELEMETRY_ENABLED=0" in environment


def test_the_superlink_database_is_pruned_daily_with_the_superlinks_hardening() -> None:
    superlink = _unit("fedkd-superlink.service")["Service"]
    prune = _unit("fedkd-superlink-prune.service")["Service"]
    assert prune["Type"] == "oneshot"
    start = prune["ExecStart"].split()
    assert start[:3] == ["/opt/fedkd/venv/bin/fedkd", "deploy", "prune"]
    # The very file the SuperLink writes, and no other directory writable.
    database = superlink["ExecStart"].split("--database ")[1].split()[0]
    assert start[start.index("--database") + 1] == database
    assert float(start[start.index("--keep-hours") + 1]) == 168
    assert "--dry-run" not in start
    for key in ("User", "Group", "ReadWritePaths", "StateDirectory", "UMask"):
        assert prune[key] == superlink[key], key
    assert database.startswith(prune["ReadWritePaths"] + "/")
    assert "[Install]" not in (UNITS / "fedkd-superlink-prune.service").read_text()

    timer = _unit("fedkd-superlink-prune.timer")
    assert timer["Timer"]["Unit"] == "fedkd-superlink-prune.service"
    assert timer["Timer"]["OnCalendar"] == "*-*-* 03:30:00"  # daily, at a quiet hour
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def _option(start: str, flag: str) -> str:
    parts = start.split()
    return parts[parts.index(flag) + 1]


def test_hospitals_reach_only_the_fleet_gateway_which_forwards_to_the_site_local_superlink() -> (
    None
):
    superlink = _unit("fedkd-superlink.service")["Service"]["ExecStart"]
    assert _option(superlink, "--host") == "127.0.0.1"  # the site's own interface only
    gateway = _unit("fedkd-fleet-gateway.service")["Service"]["ExecStart"]
    assert gateway.split()[:3] == ["/opt/fedkd/venv/bin/fedkd", "deploy", "gateway"]
    upstream = f"https://127.0.0.1:{_option(superlink, '--port')}"
    assert _option(gateway, "--superlink") == upstream
    assert _option(gateway, "--listen") == "${HOSPITAL_FACING}"


def test_clientapps_start_only_through_the_pinning_launcher() -> None:
    node = _unit("fedkd-supernode@.service")["Service"]["ExecStart"]
    assert _option(node, "--isolation") == "process" and _option(node, "--host") == "127.0.0.1"
    launcher = _unit("fedkd-launcher@.service")
    start = launcher["Service"]["ExecStart"]
    assert start.split()[1:4] == ["node", "launch", "/etc/fedkd/%i.node.toml"]
    runtime = f"127.0.0.1:{_option(node, '--port')}"
    assert _option(start, "--runtime-api-address") == runtime
    assert launcher["Unit"]["BindsTo"] == "fedkd-supernode@%i.service"
