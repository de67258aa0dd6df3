"""The UCI Heart Disease hospitals as four example CSV files sharing one schema.

What a real deployment looks like: each hospital holds its own table and runs the ``csv``
provider on it, and the coordinating site distributes a public bundle.  The four CSVs are
the documentation's worked example, and a test that CSV-fed hospitals reproduce the
built-in ``heart`` simulation bit for bit: each file holds exactly the rows the natural
partition gives that hospital (training rows marked ``train``, then its local test rows
marked ``test``).

The local test rows are the hospital's own held-out records and nothing else: no node's
local test set is topped up from the public test set, in the simulation or from a file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedkd.data.arrays import LabelledArrays
from fedkd.data.federated import DataSpec, build_federated_data
from fedkd.data.providers.csv_table import ColumnSpec, TableSchema, toml_value, write_schema
from fedkd.data.public import PublicDataSpec, load_public_data, save_public_bundle
from fedkd.data.sources import (
    _HEART_BINARY,
    _HEART_CATEGORIES,
    _HEART_FEATURES,
    HEART_CLASSES,
    HEART_HOSPITALS,
    _heart_encode,
    _heart_rows,
    heart_standardisation,
)

# File names of the hospitals, in HEART_HOSPITALS (and so partition) order.
HOSPITAL_SLUGS = ("cleveland", "hungary", "switzerland", "va-long-beach")
LABEL_COLUMN = "diagnosis"
SPLIT_COLUMN = "split"
# Wide clinical bounds covering every recorded value (Switzerland records chol = 0, and a
# resting blood pressure of 0 occurs too); they catch typos, not outliers.
_NUMERIC = {
    "age": ("int", 0.0, 120.0),
    "trestbps": ("int", 0.0, 300.0),
    "chol": ("int", 0.0, 1000.0),
    "thalch": ("int", 0.0, 300.0),
    "oldpeak": ("float", -10.0, 10.0),
}
_BINARY_VALUES = {"sex": ("Female", "Male"), "fbs": ("FALSE", "TRUE"), "exang": ("FALSE", "TRUE")}


@dataclass(frozen=True)
class HospitalFiles:
    """One hospital's example files: its CSV and a node configuration that reads it."""

    hospital: str
    slug: str
    csv: Path
    node_config: Path


@dataclass(frozen=True)
class HeartExport:
    """Everything :func:`export_heart_hospitals` wrote."""

    public: Path
    schema: Path
    hospitals: tuple[HospitalFiles, ...]
    simulation: Path


def heart_schema(rows: list[dict[str, str]] | None = None) -> TableSchema:
    """The schema of the ten heart features, normalised as the built-in ``heart`` source.

    The mean and std of each numeric column are the public split's
    (:func:`fedkd.data.sources.heart_standardisation`), so a CSV hospital encodes its rows
    bit for bit as the simulation does and no private row moves them.
    """
    rows = _heart_rows() if rows is None else rows
    stats = heart_standardisation(rows)
    columns = []
    for name in _HEART_FEATURES:
        if name in _NUMERIC:
            kind, low, high = _NUMERIC[name]
            mean, std = stats[name]
            columns.append(ColumnSpec(name, kind, mean=mean, std=std, min=low, max=high))
        elif name in _HEART_CATEGORIES:
            columns.append(ColumnSpec(name, "category", values=_HEART_CATEGORIES[name]))
        else:
            values = _BINARY_VALUES[name]
            columns.append(ColumnSpec(name, "binary", values=values, positive=_HEART_BINARY[name]))
    return TableSchema(
        name="heart-disease-uci",
        label=LABEL_COLUMN,
        classes=HEART_CLASSES,
        columns=tuple(columns),
        split=SPLIT_COLUMN,
        min_records=20,
    )


def export_heart_hospitals(
    out_dir: Path, *, seed: int = 0, min_local_test: int = 100
) -> HeartExport:
    """Write the public bundle, the schema, and each hospital's CSV and node config.

    The CSVs hold the rows of ``DataSpec("heart", num_clients=4, partitioner="natural",
    seed=seed, min_local_test=min_local_test)``: run the ``csv`` provider on them and each
    hospital gets the same training records and local test set as in that simulation
    (``min_local_test`` changes no record: it is the minimum the reports flag below).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    public = save_public_bundle(
        load_public_data(PublicDataSpec(dataset="heart")), out_dir / "public.npz"
    )
    rows = _heart_rows()
    schema = write_schema(heart_schema(rows), out_dir / "heart.schema.toml")
    spec = DataSpec(
        "heart", num_clients=4, partitioner="natural", seed=seed, min_local_test=min_local_test
    )
    clients = build_federated_data(spec).clients
    find = _raw_row_finder(rows)
    hospitals = []
    for hospital, slug, client in zip(HEART_HOSPITALS, HOSPITAL_SLUGS, clients, strict=True):
        table = out_dir / f"{slug}.csv"
        _write_hospital_csv(table, [(find(client.train), "train"), (find(client.test), "test")])
        config = out_dir / f"{slug}.node.toml"
        _write_node_config(config, slug, table, schema, public)
        hospitals.append(HospitalFiles(hospital, slug, table, config))
    simulation = out_dir / "simulation.toml"
    simulation.write_text(_simulation_file(public, schema, hospitals, seed=seed))
    return HeartExport(
        public=public, schema=schema, hospitals=tuple(hospitals), simulation=simulation
    )


def _raw_row_finder(
    rows: list[dict[str, str]],
) -> Callable[[LabelledArrays], list[dict[str, str]]]:
    """Maps encoded records back to raw table rows.

    Equal encodings come only from equal feature values, so when several raw rows match a
    record (repeated patients' values) any of them writes the same CSV line.
    """
    x = _heart_encode(rows, heart_standardisation(rows))
    y = [int(int(r["num"]) > 0) for r in rows]
    index: dict[tuple[bytes, int], int] = {}
    for i in range(len(rows)):
        index.setdefault((x[i].tobytes(), y[i]), i)

    def find(records: LabelledArrays) -> list[dict[str, str]]:
        keys = zip((r.tobytes() for r in records.x), records.y.tolist(), strict=True)
        return [rows[index[key]] for key in keys]

    return find


def _write_hospital_csv(path: Path, parts: list[tuple[list[dict[str, str]], str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*_HEART_FEATURES, LABEL_COLUMN, SPLIT_COLUMN])
        for rows, split in parts:
            for row in rows:
                label = HEART_CLASSES[int(int(row["num"]) > 0)]
                writer.writerow([*(row[f] for f in _HEART_FEATURES), label, split])


def _write_node_config(path: Path, slug: str, table: Path, schema: Path, public: Path) -> None:
    # File names relative to the config's own folder: the folder can be copied anywhere.
    lines = {
        "name": slug,
        "data": "csv",
        "data-path": table.name,
        "data-schema": schema.name,
        "public-data": public.name,
        "state-dir": f"state/{slug}",
    }
    policy = (
        "# The node's privacy policy (its own; a run may ask for more, never less).  A node on\n"
        "# real data declares its lifetime budget, or refuses to start: every release of its\n"
        "# store, in every run, composes against it.\n"
    )
    budget = {"privacy-max-epsilon": LIFETIME_EPSILON, "privacy-max-delta": LIFETIME_DELTA}
    path.write_text(
        "".join(f"{k} = {toml_value(v)}\n" for k, v in lines.items())
        + policy
        + "".join(f"{k} = {toml_value(v)}\n" for k, v in budget.items())
    )


LIFETIME_EPSILON = 10.0
"""The example hospitals' lifetime ε: a few runs at the simulation's ε = 3."""
LIFETIME_DELTA = 1e-5


def _simulation_file(
    public: Path, schema: Path, hospitals: list[HospitalFiles], *, seed: int
) -> str:
    """A simulation whose four nodes read the hospitals' CSVs (names relative to it), with
    the protocol of ``simulations/heart.toml``."""
    lines = [
        "# The four Heart Disease hospitals, each reading its own CSV: fedkd simulate THIS_FILE",
        'run-name = "heart-csv"',
        'dataset = "heart"',
        f'public-data = "{public.name}"',
        "num-clients = 4",
        'partitioner = "natural"',
        f"seed = {seed}",
        "num-server-rounds = 10",
        "local-epochs = 2",
        "distill-epochs = 2",
        "batch-size = 16",
        "lr = 0.02",
        'model = "mlp-s"',
        "# Real hospitals' nodes declare a lifetime budget and so require DP-SGD.",
        "dp = true",
        "dp-target-epsilon = 3.0",
        f"dp-delta = {LIFETIME_DELTA:g}",
    ]
    for index, hospital in enumerate(hospitals):
        lines += [
            "",
            f"[node.{index}]",
            f'name = "{hospital.slug}"',
            'data = "csv"',
            f'data-path = "{hospital.csv.name}"',
            f'data-schema = "{schema.name}"',
            f"privacy-max-epsilon = {LIFETIME_EPSILON}",
            f"privacy-max-delta = {LIFETIME_DELTA:g}",
        ]
    return "\n".join(lines) + "\n"
