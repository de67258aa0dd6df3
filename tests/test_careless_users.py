"""A careless user's config is refused before anything starts: exit code 2 within five
seconds, one line naming the key (and the nearest known name for a near miss), no
traceback; the Python API raises a one-line ``TypeError``/``ValueError`` naming the key.
Each case below once ran for minutes, printed tracebacks, or was silently accepted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import fedkd
from fedkd.config import ConfigTypeError
from fedkd.run_directory import INCOMPLETE, STAGING
from tests.test_user_errors import DIGITS, ROOT

CARELESS_S = 5.0
"""The wall time a refusal may take, the interpreter's start included."""


def _cli(*args: str, cwd: Path) -> tuple[int, str, float]:
    """``fedkd ARGS`` in a fresh interpreter: exit code, everything printed, seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return done.returncode, (done.stdout + done.stderr).strip(), time.perf_counter() - started


def _refused(args: list[str], key: str, fragment: str, cwd: Path) -> str:
    """Assert the CLI refuses ``args`` as a careless input; return its one line."""
    code, output, took = _cli(*args, cwd=cwd)
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].strip(), output
    assert key in lines[0] and fragment in lines[0], output
    assert took < CARELESS_S, f"{took:.1f} s: {output}"
    assert not list(cwd.rglob(STAGING)), "a run was started"
    return lines[0]


def _simulation_file(folder: Path, text: str) -> str:
    path = folder / "careless.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# --- the CLI ------------------------------------------------------------------------------


def test_an_unknown_partitioner_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    line = _refused(
        ["simulate", DIGITS, "--set", "partitioner=zipf"],
        "partitioner",
        "unknown partitioner 'zipf'; known: dirichlet, iid, natural, pathological",
        tmp_path,
    )
    assert "did you mean" not in line
    _refused(
        ["simulate", DIGITS, "--set", "partitioner=dirichlett"],
        "partitioner",
        "did you mean 'dirichlet'?",
        tmp_path,
    )


def test_an_unknown_device_is_refused_before_any_node_starts(tmp_path: Path) -> None:
    _refused(
        ["simulate", DIGITS, "--set", "device=tpu"],
        "device",
        "unknown device 'tpu'; known: auto, cpu, cuda, cuda:<index>, mps",
        tmp_path,
    )
    _refused(
        ["simulate", DIGITS, "--set", "device=gpu"], "device", "did you mean 'cuda'?", tmp_path
    )


def test_a_node_table_naming_no_data_provider_is_refused(tmp_path: Path) -> None:
    config = _simulation_file(
        tmp_path,
        """
        run-name = "careless"
        dataset = "digits"
        num-clients = 3
        [node]
        data = "nosuchprovider"
        """,
    )
    _refused(
        ["simulate", config],
        "data",
        "unknown data provider 'nosuchprovider'; known: arrays, csv, partition",
        tmp_path,
    )
    near = _simulation_file(tmp_path, 'num-clients = 3\n[node.2]\ndata = "cvs"\n')
    _refused(["simulate", near], "node-2", "did you mean 'csv'?", tmp_path)


def test_client_models_naming_a_client_beyond_num_clients_is_refused(tmp_path: Path) -> None:
    _refused(
        ["simulate", DIGITS, "--set", "client-models=0:mlp-s,99:mlp-l"],
        "client-models",
        "client-models names client 99, but num-clients is 10 (clients 0 … 9)",
        tmp_path,
    )


def test_more_clients_per_round_than_clients_is_refused(tmp_path: Path) -> None:
    _refused(
        ["simulate", DIGITS, "--set", "clients-per-round=50"],
        "clients-per-round",
        "clients-per-round must be <= num-clients (10), got 50",
        tmp_path,
    )


def test_more_clients_than_the_dataset_can_deal_out_is_refused(tmp_path: Path) -> None:
    _refused(
        ["simulate", DIGITS, "--set", "num-clients=5000"],
        "num-clients",
        "num-clients = 5000 needs 50000 records (10 per client) but digits has",
        tmp_path,
    )


def test_a_value_of_the_wrong_type_is_refused_on_the_command_line(tmp_path: Path) -> None:
    _refused(
        ["simulate", DIGITS, "--set", "num-server-rounds=2.0"],
        "num-server-rounds",
        "num-server-rounds must be an integer, got 2.0 (float)",
        tmp_path,
    )
    # Text a key takes is kept as typed: a run may be called 2024.
    code, output, _ = _cli(
        "simulate", DIGITS, "--set", "run-name=2024", "--set", "lr=0", cwd=tmp_path
    )
    assert code == 2 and "lr must be > 0" in output, output


def test_a_misspelled_key_gets_did_you_mean_not_every_key(tmp_path: Path) -> None:
    line = _refused(
        ["simulate", DIGITS, "--set", "num-clientz=3"],
        "num-clientz",
        "unknown config key 'num-clientz'; did you mean 'num-clients'?",
        tmp_path,
    )
    assert "dp-accountant" not in line and len(line) < 120, line
    line = _refused(["simulate", DIGITS, "--set", "colour=red"], "colour", "", tmp_path)
    assert "'num-clients'" not in line and "see RunConfig" in line, line
    node = _simulation_file(tmp_path, "num-clients = 3\n[node]\nprivacy-max-epsilonn = 3\n")
    _refused(["simulate", node], "privacy-max-epsilonn", "'privacy-max-epsilon'?", tmp_path)


def test_node_check_prints_no_rich_markup_literally(tmp_path: Path) -> None:
    from fedkd.data.heart_export import export_heart_hospitals

    exported = export_heart_hospitals(tmp_path / "hospitals")
    table = exported.hospitals[1].csv
    lines = table.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[0], "sixty", 1)
    table.write_text("\n".join(lines) + "\n")
    code, output, took = _cli("node", "check", str(exported.hospitals[1].node_config), cwd=tmp_path)
    # `node check` gives its verdict with exit 1 (the node is not ready), one problem a line.
    assert code == 1 and "Traceback" not in output, output
    assert "[red]" not in output and "[/]" not in output, output
    assert output.splitlines()[0] == "hungary: the data cannot be used", output
    assert "'sixty' is not a number" in output
    # A message holding brackets ([node.5]) is printed whole, not eaten as markup.
    bad_section = _simulation_file(tmp_path, "num-clients = 3\n[node.5]\nmodel = 'mlp-s'\n")
    _refused(["simulate", bad_section], "[node.5]", "names no simulated node", tmp_path)
    assert took < 30


# --- the Python API -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [("3", "'3' (str)"), (2.0, "2.0 (float)"), (True, "True (bool)")]
)
def test_the_api_takes_integers_only_as_integers(value: Any, shown: str) -> None:
    before = dict(os.environ)
    started = time.perf_counter()
    message = re.escape(f"num-server-rounds must be an integer, got {shown}")
    with pytest.raises(TypeError, match=message) as raised:
        fedkd.simulate(DIGITS, num_server_rounds=value)
    assert isinstance(raised.value, ValueError)  # a config error like any other
    with pytest.raises(ConfigTypeError, match=message):
        fedkd.compare(DIGITS, ["mean"], [0], num_server_rounds=value)
    with pytest.raises(ConfigTypeError, match=message):
        fedkd.simulate({"num-server-rounds": value})
    assert time.perf_counter() - started < CARELESS_S
    assert dict(os.environ) == before


def test_the_api_refuses_other_wrong_types_naming_the_key() -> None:
    with pytest.raises(TypeError, match=r"lr must be a number, got 'fast' \(str\)"):
        fedkd.simulate(DIGITS, lr="fast")
    with pytest.raises(TypeError, match=r"dp must be true or false, got 1 \(int\)"):
        fedkd.simulate(DIGITS, dp=1)
    with pytest.raises(TypeError, match=r"strategy must be a string, got 3 \(int\)"):
        fedkd.simulate(DIGITS, strategy=3)
    with pytest.raises(TypeError, match="config must be a simulation TOML file's path"):
        fedkd.simulate(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="node must be a mapping of node config keys"):
        fedkd.simulate({"node": "csv"})


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (0, r"seeds must be a list of whole numbers such as \[0, 1, 2\].*got 0 \(int\)"),
        ([0, 1.0], r"seeds must be whole numbers such as \[0, 1, 2\], got 1.0 \(float\)"),
        ([True], r"got True \(bool\)"),
        (["1"], r"got '1' \(str\)"),
    ],
)
def test_compare_says_what_seeds_must_be(seeds: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        fedkd.compare(DIGITS, ["mean"], seeds)


def test_compare_says_what_strategies_must_be() -> None:
    with pytest.raises(TypeError, match="strategies must be a list of strategy names"):
        fedkd.compare(DIGITS, 3)  # type: ignore[arg-type]


def test_the_api_suggests_the_key_that_was_meant() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'num-server-rounds'\?$"):
        fedkd.simulate(DIGITS, num_server_round=3)
    with pytest.raises(ValueError, match=r"unknown strategy 'knfuu'; did you mean 'knfu'\?"):
        fedkd.compare(DIGITS, ["knfuu"])
    with pytest.raises(ValueError, match=r"knfu has no parameter\(s\) \['betaa'\]; did you"):
        fedkd.simulate(DIGITS, knfu_betaa=3.0)


# --- interrupts and the environment -------------------------------------------------------

_SIGNALLED_RUN = """
import sys, time
from pathlib import Path
from fedkd.flower_glue.simulation import _stopped_by_signals
from fedkd.run_directory import RunDirectory

directory = RunDirectory.create(Path(sys.argv[1]), "careless", overwrite=False)
(directory.staging / "metrics.jsonl").write_text("{}\\n")
with _stopped_by_signals(None, on_abort=directory.abandon) as signals:
    stop = signals.event
    print("running", flush=True)
    while not stop.is_set():
        time.sleep(0.02)
    print(f"stopping ({stop.reason})", flush=True)  # a run slow to stop: Ray, a round
    time.sleep(30)
"""


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)],
    ids=["double-ctrl-c", "sigterm-twice"],
)
def test_a_second_interrupt_still_sets_the_run_aside_as_incomplete(
    first: signal.Signals, second: signal.Signals, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGNALLED_RUN, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(first)
        assert proc.stdout.readline().strip() == ""  # the handler's leading newline
        told = proc.stdout.readline()
        assert f"interrupted ({first.name}): stopping the run" in told, told
        assert proc.stdout.readline().strip() == f"stopping ({first.name})"
        assert proc.poll() is None  # the first interrupt asks; it does not kill
        proc.send_signal(second)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    assert not list((tmp_path / STAGING).glob("*")), "a staging folder was left behind"
    (aside,) = (tmp_path / INCOMPLETE).iterdir()
    summary = json.loads((aside / "summary.json").read_text())
    assert summary["status"] == "incomplete"
    assert summary["incomplete_reason"] == f"stopped at once by a second {second.name}"
    assert (aside / "metrics.jsonl").read_text() == "{}\n"
    assert str(aside) in output


_SECOND_SIGNAL_WHILE_PUTTING_AWAY = """
import os, signal, sys
from pathlib import Path
from fedkd.flower_glue.simulation import _stopped_by_signals
from fedkd.run_directory import RunDirectory

directory = RunDirectory.create(Path(sys.argv[1]), "careless", overwrite=False)
with _stopped_by_signals(None, on_abort=directory.abandon) as signals:
    os.kill(os.getpid(), signal.SIGTERM)
    with signals.finishing():
        os.kill(os.getpid(), signal.SIGTERM)
        print("still putting the run away", flush=True)
        directory.set_aside("interrupted (SIGTERM)")
    print("never printed", flush=True)
"""


def test_a_second_signal_while_the_run_is_put_away_waits_for_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_SIGNAL_WHILE_PUTTING_AWAY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 130, done.stderr
    assert "still putting the run away" in done.stdout and "never" not in done.stdout
    assert not list((tmp_path / STAGING).glob("*"))
    (aside,) = (tmp_path / INCOMPLETE).iterdir()
    summary = json.loads((aside / "summary.json").read_text())
    assert summary == {
        "run_name": "careless",
        "status": "incomplete",
        "incomplete_reason": "interrupted (SIGTERM)",
    }


def test_a_run_set_aside_before_it_wrote_a_summary_says_why(tmp_path: Path) -> None:
    from fedkd.run_directory import RunDirectory

    directory = RunDirectory.create(tmp_path, "careless", overwrite=False)
    where = directory.set_aside("ValueError: the nodes could not be configured")
    summary = json.loads((where / "summary.json").read_text())
    assert summary["status"] == "incomplete"
    assert summary["incomplete_reason"] == "ValueError: the nodes could not be configured"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        ([signal.SIGTERM], "interrupted (SIGTERM)"),
        ([signal.SIGINT, signal.SIGINT], "stopped at once by a second SIGINT"),
        ([signal.SIGTERM, signal.SIGTERM], "stopped at once by a second SIGTERM"),
    ],
    ids=["sigterm", "double-ctrl-c", "sigterm-twice"],
)
def test_a_real_run_stopped_by_signals_is_set_aside_as_incomplete(
    signals: list[signal.Signals], reason: str, tmp_path: Path
) -> None:
    config = _simulation_file(
        tmp_path,
        f"""
        run-name = "long"
        dataset = "digits"
        num-clients = 2
        partitioner = "iid"
        transfer-size = 200
        num-server-rounds = 500
        model = "mlp-s"
        strategy = "mean"
        output-dir = "{tmp_path / "runs"}"
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedkd.cli", "simulate", config],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            metrics = list((tmp_path / "runs" / STAGING).glob("long-*/metrics.jsonl"))
            if metrics and metrics[0].read_text().count("\n") >= 4:  # rounds 0 and 1 done
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        else:
            pytest.fail("the run never got going")
        for sig in signals:
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)  # Ctrl-C reaches the terminal's whole group
            else:
                os.kill(proc.pid, sig)  # `kill PID`, a service manager stopping it
            time.sleep(0.3)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    assert not list((tmp_path / "runs" / STAGING).glob("*")), output
    (aside,) = (tmp_path / "runs" / INCOMPLETE).iterdir()
    summary = json.loads((aside / "summary.json").read_text())
    assert summary["status"] == "incomplete" and reason in summary["incomplete_reason"]


_ENVIRONMENT_AFTER_A_RUN = """
import json, os, sys
import fedkd
from fedkd.flower_glue import simulation
from fedkd.interrupt import RunInterrupted

def flower_stopped_at_once(*args, **kwargs):
    raise RunInterrupted("interrupted (as soon as Flower was imported)")

if sys.argv[2] == "stub":  # everything up to Flower's engine: imports, preflight, set-up
    simulation._run_flower_simulation = flower_stopped_at_once
before = dict(os.environ)
tiny = dict(
    dataset="digits", num_clients=2, partitioner="iid", transfer_size=200,
    num_server_rounds=1, model="mlp-s", strategy="mean", run_name="tiny",
)
try:
    fedkd.simulate(tiny, output_dir=sys.argv[1])
except RunInterrupted:
    pass
after = dict(os.environ)
print(json.dumps({
    "added": sorted(set(after) - set(before)),
    "removed": sorted(set(before) - set(after)),
    "changed": sorted(k for k in before if k in after and after[k] != before[k]),
}))
"""


def _environment_change(tmp_path: Path, mode: str) -> dict[str, list[str]]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "RAY_", "KMP_", "FLWR_"))
    }
    done = subprocess.run(
        [sys.executable, "-c", _ENVIRONMENT_AFTER_A_RUN, str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    change: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return change


def test_the_api_leaves_the_environment_as_it_found_it(tmp_path: Path) -> None:
    """A fresh interpreter, so the libraries' import-time variables count (they did:
    GRPC_VERBOSITY, RAY_ENABLE_UV_RUN_RUNTIME_ENV, KMP_DUPLICATE_LIB_OK)."""
    assert _environment_change(tmp_path, "stub") == {"added": [], "removed": [], "changed": []}


@pytest.mark.integration
def test_a_real_run_leaves_the_environment_as_it_found_it(tmp_path: Path) -> None:
    assert _environment_change(tmp_path, "real") == {"added": [], "removed": [], "changed": []}
    assert json.loads((tmp_path / "tiny" / "summary.json").read_text())["status"] == "complete"
