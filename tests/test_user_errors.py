"""Every error that is the user's is one line naming the bad value and what is allowed,
exit code 2, no traceback, and before any simulation starts: Ray is never loaded, and a
config error is found before torch is (the seconds a run's start costs).  Each row below
was a traceback or a silent acceptance once."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "simulations" / "digits.toml")
PROBE = (
    "import atexit, json, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "loaded = lambda: sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
    "atexit.register(lambda: open(out, 'w').write(json.dumps(loaded())))\n"
    "runpy.run_module('fedkd.cli', run_name='__main__', alter_sys=True)\n"
)
"""``fedkd`` as the command line runs it, writing at exit which heavy modules it loaded."""


def _idx(path: Path, array: np.ndarray, *, truncate: int = 0) -> None:
    """Write ``array`` (uint8) as an IDX file, optionally cutting ``truncate`` bytes off."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(raw[: len(raw) - truncate] if truncate else raw)


def _mnist(folder: Path, *, truncate_images: int = 0, bad_label: int | None = None) -> Path:
    data = folder / "mnist"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 600), ("t10k", 200)):
        labels = np.arange(count) % 10
        if bad_label is not None and prefix == "train":
            labels[7] = bad_label
        _idx(
            data / f"{prefix}-images-idx3-ubyte",
            rng.integers(0, 255, (count, 28, 28)),
            truncate=truncate_images if prefix == "train" else 0,
        )
        _idx(data / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


# (case, command after `fedkd`, fragment of the one line, is it a config error)
CASES: list[tuple[str, list[str], str, bool]] = [
    (
        "unknown dataset",
        ["simulate", DIGITS, "--set", "dataset=nope"],
        "unknown dataset 'nope'",
        True,
    ),
    (
        "misspelled key",
        ["simulate", DIGITS, "--set", "colour=red"],
        "unknown config key 'colour'",
        True,
    ),
    (
        "misspelled strategy parameter",
        ["simulate", DIGITS, "--set", "knfu-betaa=3"],
        "knfu has no parameter(s) ['betaa']",
        True,
    ),
    (
        "temperature 0",
        ["simulate", DIGITS, "--set", "distill-temperature=0"],
        "distill-temperature must be > 0",
        True,
    ),
    (
        "reply-timeout 0",
        ["simulate", DIGITS, "--set", "reply-timeout=0"],
        "reply-timeout must be > 0 seconds",
        True,
    ),
    (
        "negative train cap",
        ["simulate", DIGITS, "--set", "max-train-per-client=-3"],
        "max-train-per-client must be >= 0, got -3",
        True,
    ),
    (
        "no classes",
        ["simulate", DIGITS, "--set", "classes-per-client=0"],
        "classes-per-client must be >= 1, got 0",
        True,
    ),
    (
        "run name climbing out",
        ["simulate", DIGITS, "--set", "run-name=../../x"],
        "run-name '../../x' must be one folder name",
        True,
    ),
    ("lr not a number", ["simulate", DIGITS, "--set", "lr=fast"], "lr", True),
    ("missing config file", ["simulate", "no-such.toml"], "no simulation config at", True),
    (
        "seeds not numbers",
        ["compare", DIGITS, "--seeds", "a,b"],
        "seed 'a' is not a whole number",
        True,
    ),
    ("no strategies", ["compare", DIGITS, "--strategies", ""], "no strategies given", True),
    (
        "unknown strategy",
        ["compare", DIGITS, "--strategies", "knfu,nope"],
        "unknown strategy 'nope'",
        True,
    ),
    (
        "more classes than the dataset",
        ["simulate", DIGITS, "--set", "partitioner=pathological", "--set", "classes-per-client=20"],
        "classes-per-client must be <= 10",
        False,
    ),
    (
        "oversize transfer set",
        ["simulate", DIGITS, "--set", "transfer-size=100000"],
        "transfer-size must be in (0, 1396) for digits, got 100000",
        False,
    ),
    (
        "missing MNIST",
        ["simulate", DIGITS, "--set", "dataset=mnist", "--set", "data-dir=@EMPTY@"],
        "mnist not found in",
        False,
    ),
    (
        "truncated IDX",
        ["simulate", DIGITS, "--set", "dataset=mnist", "--set", "data-dir=@CUT@"],
        "header says (600, 28, 28)",
        False,
    ),
    (
        "IDX label 200",
        ["simulate", DIGITS, "--set", "dataset=mnist", "--set", "data-dir=@BAD@"],
        "label 200 at record 7 is outside 0…9",
        False,
    ),
    (
        "unwritable output dir",
        ["simulate", DIGITS, "--set", "output-dir=@FILE@/runs"],
        "cannot be written: Not a directory",
        False,
    ),
    (
        "run exists",
        ["simulate", DIGITS, "--set", "output-dir=@EXISTS@"],
        "already holds a run; choose another run name, or pass --overwrite",
        False,
    ),
    (
        "ledger export into a missing folder",
        ["ledger", "export", "x.db", "--out", "@TMP@/missing/x.csv"],
        "does not exist",
        True,
    ),
    (
        "fetch of an unknown dataset",
        ["data", "fetch", "nope"],
        "fetch knows ['fashion-mnist', 'mnist'], not 'nope'",
        True,
    ),
]


@pytest.mark.parametrize(
    ("case", "args", "fragment", "config_error"), CASES, ids=[c[0] for c in CASES]
)
def test_a_user_error_is_one_line_exit_2_and_no_traceback(
    case: str, args: list[str], fragment: str, config_error: bool, tmp_path: Path
) -> None:
    (tmp_path / "FILE").write_text("a file, not a folder")
    (tmp_path / "EXISTS" / "digits").mkdir(parents=True)
    places = {
        "EMPTY": tmp_path / "empty",
        "CUT": _mnist(tmp_path / "cut", truncate_images=100),
        "BAD": _mnist(tmp_path / "bad", bad_label=200),
        "FILE": tmp_path / "FILE",
        "EXISTS": tmp_path / "EXISTS",
        "TMP": tmp_path,
    }
    argv = []
    for arg in args:
        for marker, path in places.items():
            arg = arg.replace(f"@{marker}@", str(path))
        argv.append(arg)
    loaded = tmp_path / "loaded.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(loaded), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert fragment in output
    heavy = json.loads(loaded.read_text())
    assert heavy == ([] if config_error else [m for m in heavy if m != "ray"]), heavy
    # Nothing was started: no run folder, no staging left behind.
    assert not list(tmp_path.rglob(".staging"))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.cli", "--debug", "simulate", DIGITS, "--set", "lr=0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "Traceback" in done.stderr
