"""A run directory appears whole or not at all; nothing is replaced without overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedkd.run_directory import (
    INCOMPLETE,
    RunDirectory,
    RunExistsError,
    is_complete,
    read_summary,
)


def _write_run(directory: RunDirectory, status: str, marker: str) -> None:
    (directory.staging / "summary.json").write_text(json.dumps({"status": status, "m": marker}))


def test_a_complete_run_moves_into_place_and_leaves_no_staging(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path, "r", overwrite=False)
    assert run.staging.is_dir() and not run.target.exists()
    _write_run(run, "complete", "first")
    assert run.publish() == tmp_path / "r"
    assert is_complete(tmp_path / "r")
    assert not (tmp_path / ".staging").exists()


def test_an_existing_run_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    first = RunDirectory.create(tmp_path, "r", overwrite=False)
    _write_run(first, "complete", "first")
    first.publish()
    with pytest.raises(RunExistsError, match=r"already holds a run.*--overwrite"):
        RunDirectory.create(tmp_path, "r", overwrite=False)
    assert read_summary(tmp_path / "r") == {"status": "complete", "m": "first"}


def test_overwrite_replaces_only_when_the_new_run_is_complete(tmp_path: Path) -> None:
    first = RunDirectory.create(tmp_path, "r", overwrite=False)
    _write_run(first, "complete", "first")
    first.publish()
    second = RunDirectory.create(tmp_path, "r", overwrite=True)
    # Until it is published, the old run is untouched.
    assert read_summary(tmp_path / "r") == {"status": "complete", "m": "first"}
    _write_run(second, "complete", "second")
    second.publish()
    assert read_summary(tmp_path / "r") == {"status": "complete", "m": "second"}


def test_an_interrupted_run_goes_aside_and_the_previous_run_stays(tmp_path: Path) -> None:
    first = RunDirectory.create(tmp_path, "r", overwrite=False)
    _write_run(first, "complete", "first")
    first.publish()
    second = RunDirectory.create(tmp_path, "r", overwrite=True)
    _write_run(second, "incomplete", "second")
    where = second.set_aside()
    assert where.parent == tmp_path / INCOMPLETE and where.name.startswith("r-")
    assert read_summary(where) == {"status": "incomplete", "m": "second"}
    assert not is_complete(where)
    assert read_summary(tmp_path / "r") == {"status": "complete", "m": "first"}


def test_two_runs_of_one_name_never_share_a_staging_folder(tmp_path: Path) -> None:
    a = RunDirectory.create(tmp_path, "r", overwrite=True)
    b = RunDirectory.create(tmp_path, "r", overwrite=True)
    assert a.staging != b.staging and a.incomplete != b.incomplete


def test_a_folder_without_a_parsable_summary_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    assert not is_complete(tmp_path / "x")
    (tmp_path / "x" / "summary.json").write_text("{not json")
    assert not is_complete(tmp_path / "x")
