"""The shipped systemd units run as a non-root user with resource limits and hardening,
and start Flower with TLS, authentication and no runtime dependency installation."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
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
    # The internet-facing gateway has a user of its own; everything else runs as fedkd.
    assert service["User"] == ("fedkd-gateway" if "gateway" in name else "fedkd")
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


def _exposure(name: str) -> tuple[float, str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNITS / name)],
        capture_output=True, text=True, timeout=60, cwd=UNITS,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", last)
    assert match, done.stdout[-2000:] + done.stderr[-2000:]
    return float(match.group(1)), match.group(2)


@pytest.mark.parametrize("name", SERVICES)
def test_systemd_rates_every_unit_ok_or_safe(name: str) -> None:
    score, verdict = _exposure(name)
    assert score <= 3.0 and verdict in ("OK", "SAFE"), (name, score, verdict)


def test_the_gateway_has_its_own_user_certificate_and_access_log() -> None:
    gateway = _unit("fedkd-fleet-gateway.service")["Service"]
    superlink = _unit("fedkd-superlink.service")["Service"]
    assert gateway["User"] == "fedkd-gateway" != superlink["User"]
    start = gateway["ExecStart"]
    assert _option(start, "--certfile") != _option(superlink["ExecStart"], "--ssl-certfile")
    assert _option(start, "--keyfile") != _option(superlink["ExecStart"], "--ssl-keyfile")
    assert _option(start, "--access-log").startswith("/var/log/" + gateway["LogsDirectory"])
    assert _option(start, "--max-payload-bytes") == "${MAX_PAYLOAD_BYTES}"


def test_every_unit_has_a_working_directory_it_may_write_or_read() -> None:
    for name in SERVICES:
        service = _unit(name)["Service"]
        directory = service["WorkingDirectory"]
        writable = (
            service.get("ReadWritePaths", "") + " /var/log/" + service.get("LogsDirectory", "-")
        )
        assert any(directory.startswith(w) for w in writable.split() if w), name


def test_a_supernode_restarts_when_its_watchdog_exits() -> None:
    node = _unit("fedkd-supernode@.service")["Service"]
    assert node["ExecStart"].split()[:3] == ["/opt/fedkd/venv/bin/fedkd", "node", "supernode"]
    assert node["Restart"] == "on-failure"  # the watchdog's status 75 is a failure
