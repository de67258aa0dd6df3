"""Four CSV hospitals reproduce the built-in heart simulation bit for bit."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import numpy as np
import pytest

from fedkd.data.federated import DataSpec, build_federated_data
from fedkd.data.heart_export import HOSPITAL_SLUGS, export_heart_hospitals
from fedkd.data.providers import make_provider
from fedkd.data.providers.csv_table import read_schema
from fedkd.data.public import PublicDataSpec, load_public_data
from fedkd.data.sources import HEART_CLASSES
from fedkd.node.config import read_node_file


@pytest.mark.parametrize("seed", [0, 1])
def test_csv_hospitals_get_the_simulations_records(tmp_path: Path, seed: int) -> None:
    export = export_heart_hospitals(tmp_path / "heart", seed=seed)
    public = load_public_data(PublicDataSpec(bundle=str(export.public)))
    simulated = build_federated_data(
        DataSpec("heart", num_clients=4, partitioner="natural", seed=seed)
    ).clients
    assert [h.slug for h in export.hospitals] == list(HOSPITAL_SLUGS)
    for files, expected in zip(export.hospitals, simulated, strict=True):
        assert tomllib.loads(files.node_config.read_text()) == {
            "name": files.slug,
            "data": "csv",
            "data-path": files.csv.name,
            "data-schema": export.schema.name,
            "public-data": export.public.name,
            "state-dir": f"state/{files.slug}",
            "privacy-max-epsilon": 10.0,
            "privacy-max-delta": 1e-5,
        }
        # Names in a node config file are relative to the file.
        config = read_node_file(files.node_config)
        assert config["data-path"] == str(files.csv.resolve())
        provider = make_provider(
            "csv", {"path": config["data-path"], "schema": config["data-schema"]}
        )
        data = provider.load(public)
        for got, want in ((data.train, expected.train), (data.test, expected.test)):
            assert got.x.dtype == want.x.dtype == np.float32
            assert got.y.dtype == want.y.dtype == np.int64
            assert np.array_equal(got.x, want.x) and np.array_equal(got.y, want.y)
        assert data.digest == expected.digest
        # The file's test rows are the hospital's own held-out records, and only those.
        assert len(data.test) == len(expected.test)


def test_the_files_hold_raw_values_and_the_public_bundle_is_the_builtin(tmp_path: Path) -> None:
    export = export_heart_hospitals(tmp_path)
    builtin = load_public_data(PublicDataSpec(dataset="heart"))
    bundle = load_public_data(PublicDataSpec(bundle=str(export.public)))
    assert bundle.transfer.digest == builtin.transfer.digest
    assert bundle.test_digest == builtin.test_digest and bundle.classes == HEART_CLASSES
    with export.hospitals[2].csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # Switzerland: 26 training rows, then its 6 own test rows (no public row added).
    assert [r["split"] for r in rows] == ["train"] * 26 + ["test"] * 6
    assert {r["diagnosis"] for r in rows} == set(HEART_CLASSES)
    assert {r["sex"] for r in rows} <= {"Female", "Male"}
    assert any(r["chol"] == "0" for r in rows)
    sizes = [sum(1 for _ in h.csv.open()) - 1 for h in export.hospitals]
    assert sizes == [212, 182, 32, 92]


def test_the_schema_declares_the_public_split_constants(tmp_path: Path) -> None:
    schema = read_schema(export_heart_hospitals(tmp_path).schema)
    assert (schema.label, schema.split, schema.classes) == ("diagnosis", "split", HEART_CLASSES)
    assert schema.width == 15
    by_name = {c.name: c for c in schema.columns}
    assert [c.name for c in schema.columns] == [
        "age",
        "sex",
        "cp",
        "trestbps",
        "chol",
        "fbs",
        "restecg",
        "thalch",
        "exang",
        "oldpeak",
    ]
    # Means of the 111 public rows only (the whole 740-row table's age mean is 53.10).
    assert by_name["age"].mean == pytest.approx(54.0, abs=1e-9)
    assert by_name["age"].std == pytest.approx(9.588845, abs=1e-6)
    assert by_name["chol"].mean == pytest.approx(217.4955, abs=1e-4)
    assert by_name["chol"].min == 0.0 and by_name["oldpeak"].min == -10.0
    assert by_name["cp"].values == (
        "typical angina",
        "atypical angina",
        "non-anginal",
        "asymptomatic",
    )
    assert (by_name["fbs"].values, by_name["fbs"].positive) == (("FALSE", "TRUE"), "TRUE")
