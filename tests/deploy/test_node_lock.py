"""deploy/node.lock, the hashed lock a hospital's node host installs offline from: every
line pinned and hashed, every runtime dependency of fedkd (and of their dependencies, as
far as this environment has them installed at the locked version) present at a version
that satisfies its specifier, and torch the CPU build.  No network."""

from __future__ import annotations

import re
import tomllib
from collections import deque
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "node.lock"
# The node host the lock was resolved for (uv --python-platform x86_64-manylinux_2_28).
NODE_ENVIRONMENT = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "python_version": "3.11",
    "python_full_version": "3.11.7",
}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def _entries() -> list[list[str]]:
    """The lock's requirement entries, each as its tokens (continuation lines joined)."""
    text = LOCK.read_text()
    logical = text.replace("\\\n", " ")
    entries = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            entries.append(line.split())
    return entries


def _pins() -> dict[NormalizedName, Version]:
    pins: dict[NormalizedName, Version] = {}
    for tokens in _entries():
        match = PIN.match(tokens[0])
        assert match, tokens[0]
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Version(match["version"])
    return pins


def _project_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_line_is_pinned_exactly_and_hashed() -> None:
    entries = _entries()
    assert len(entries) >= 50  # fedkd's closure on Linux is about a hundred packages
    for tokens in entries:
        requirement, *options = tokens
        assert PIN.match(requirement), f"not pinned with ==: {requirement}"
        assert ";" not in " ".join(tokens), f"environment marker left in: {requirement}"
        hashes = [option for option in options if option.startswith("--hash=")]
        assert hashes, f"no --hash for {requirement}"
        assert all(HASH.match(option) for option in hashes), requirement
        assert len(hashes) == len(options), f"unexpected option for {requirement}"


def test_the_lock_says_how_to_regenerate_it() -> None:
    header = [line for line in LOCK.read_text().splitlines()[:6] if line.startswith("#")]
    text = "\n".join(header)
    assert "make lock" in text
    assert "uv pip compile pyproject.toml" in text and "--generate-hashes" in text
    assert "--python-version 3.11" in text and "x86_64-manylinux_2_28" in text
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock:", makefile, re.M) and re.search(r"^wheelhouse:", makefile, re.M)


def test_every_project_dependency_is_locked_within_its_specifier() -> None:
    pins = _pins()
    dependencies = _project_dependencies()
    assert len(dependencies) == 15
    for requirement in dependencies:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} missing from the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} outside {requirement.specifier}"
        )


def test_flwr_is_pinned_within_the_project_cap() -> None:
    (flwr,) = (r for r in _project_dependencies() if canonicalize_name(r.name) == "flwr")
    assert "simulation" in flwr.extras
    cap = SpecifierSet(">=1.41,<1.42")
    assert str(flwr.specifier) == str(cap)
    assert _pins()[canonicalize_name("flwr")] in cap


def test_torch_is_the_cpu_build_and_no_cuda_wheels_come_along() -> None:
    pins = _pins()
    torch = pins[canonicalize_name("torch")]
    assert torch.local == "cpu", f"torch=={torch} is not the CPU build"
    assert torch.public == "2.13.0"  # the Makefile's TORCH_SPEC
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^TORCH_SPEC \?= torch=={re.escape(torch.public)}$", makefile, re.M)
    gpu = [name for name in pins if name.startswith(("nvidia-", "triton", "cuda-"))]
    assert gpu == []


def test_the_lock_is_closed_under_the_installed_dependencies() -> None:
    """Walk fedkd's requirements through each installed distribution whose version is the
    locked one; every requirement met there must be locked at a satisfying version (a
    missing one would make the node's `--require-hashes` install fail)."""
    pins = _pins()
    queue: deque[tuple[NormalizedName, frozenset[str]]] = deque()
    for requirement in _project_dependencies():
        queue.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    checked = 0
    while queue:
        name, extras = queue.popleft()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        if installed != pins[name]:
            continue  # this environment has another version: its metadata says nothing
        checked += 1
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({**NODE_ENVIRONMENT, "extra": extra})
                for extra in ({""} | set(extras))
            ):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in pins, f"{name} needs {requirement}, not in the lock"
            assert requirement.specifier.contains(pins[needed], prereleases=True), (
                f"{name} needs {requirement}, locked {pins[needed]}"
            )
            queue.append((needed, frozenset(requirement.extras)))
    if checked < 50:
        pytest.skip(f"only {checked} locked distributions installed here")
    # ray arrives through flwr[simulation]: the extra was followed.
    assert (canonicalize_name("ray"), frozenset()) in seen


def test_the_tests_run_with_the_locked_versions() -> None:
    """make venv installs under the lock's pins: what the tests exercise is what hospitals
    install (torch by its public version: the lock names its CPU build's local label)."""
    differing = {}
    for name, version in _pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            differing[name] = (str(version), None)
            continue
        if installed.public != version.public or (name != "torch" and installed != version):
            differing[name] = (str(version), str(installed))
    assert differing == {}


@pytest.mark.integration
def test_fedkds_own_wheel_is_hash_pinned_and_a_changed_wheel_is_refused(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    house = tmp_path / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(ROOT), "-w", str(house)],
        check=True, timeout=600,
    )  # fmt: skip
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "fedkd-lock", f"WHEELHOUSE={house}"],
        check=True, timeout=60,
    )  # fmt: skip
    (pinned,) = (house / "fedkd.lock").read_text().splitlines()
    assert re.fullmatch(r"fedkd==\S+ --hash=sha256:[0-9a-f]{64}", pinned)

    def install(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
             "--require-hashes", "--find-links", str(house), "-r", str(house / "fedkd.lock"),
             "--target", str(tmp_path / target)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    assert install("good").returncode == 0
    (wheel,) = house.glob("fedkd-*.whl")
    shutil.copy(wheel, tmp_path / "original.whl")
    with wheel.open("ab") as fh:
        fh.write(b"\0")  # one byte more: another file under the same name
    refused = install("tampered")
    assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr
