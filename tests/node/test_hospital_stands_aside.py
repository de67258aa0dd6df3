"""Each kind of problem with a hospital's CSV stops that hospital, on its side only.

Four hospitals (the shipped Heart Disease example's files, re-exported); one has its CSV
broken in one way per test.  Through a whole round without Flower: the broken one answers
``unavailable`` with the fixed reason, its own log holds the specific problem, nothing
about its records reaches the coordinator, and the three others are fused.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.data.heart_export import HeartExport, export_heart_hospitals
from fedkd.data.public import PublicDataSpec, load_public_data
from fedkd.node import ClientNode, parse_node_config
from fedkd.node.client_node import UNAVAILABLE_REASON

Table = list[dict[str, str]]


def _drop_column(table: Table) -> Table:
    return [{k: v for k, v in row.items() if k != "chol"} for row in table]


def _extra_column(table: Table) -> Table:
    return [{**row, "patient_name": "J. Doe"} for row in table]


def _wrong_type(table: Table) -> Table:
    return [{**row, "age": "sixty"} if i == 3 else row for i, row in enumerate(table)]


def _out_of_range(table: Table) -> Table:
    return [{**row, "trestbps": "999"} if i == 5 else row for i, row in enumerate(table)]


def _unknown_label(table: Table) -> Table:
    return [{**row, "diagnosis": "maybe"} if i == 7 else row for i, row in enumerate(table)]


def _too_few(table: Table) -> Table:
    train = [row for row in table if row["split"] == "train"][:5]
    return train + [row for row in table if row["split"] == "test"]


BREAKAGES: dict[str, tuple[Callable[[Table], Table], str]] = {
    "missing column": (_drop_column, "missing column 'chol'"),
    "extra column": (_extra_column, "column 'patient_name' is not in the schema"),
    "wrong type": (_wrong_type, "row 4, column 'age': 'sixty' is not a number"),
    "out of range": (_out_of_range, "row 6, column 'trestbps': '999' is above the declared max"),
    "unknown label": (_unknown_label, "row 8, column 'diagnosis': unknown label 'maybe'"),
    "too few records": (_too_few, "5 training records; the schema's min-records is 20"),
}


def _rewrite(path: Path, change: Callable[[Table], Table]) -> None:
    with path.open(newline="") as fh:
        table = change(list(csv.DictReader(fh)))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> HeartExport:
    return export_heart_hospitals(tmp_path_factory.mktemp("hospitals"))


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_a_broken_hospital_stands_aside_and_the_others_go_on(
    kind: str, exported: HeartExport, tmp_path: Path
) -> None:
    change, message = BREAKAGES[kind]
    broken = tmp_path / "cleveland.csv"
    broken.write_text(exported.hospitals[0].csv.read_text())
    _rewrite(broken, change)
    cfg = parse_run_config(
        {
            "dataset": "heart",
            "public-data": str(exported.public),
            "num-clients": 4,
            "num-server-rounds": 1,
            "model": "mlp-s",
            "strategy": "mean",
            "batch-size": 16,
            "dp": True,  # the hospitals' own policies require it (their lifetime budgets)
            "dp-target-epsilon": 3.0,
        }
    )
    public = load_public_data(PublicDataSpec(bundle=str(exported.public)))
    coord = Coordinator(cfg, run_id="r", transfer=public.transfer, num_classes=2)
    deliveries = []
    for i, hospital in enumerate(exported.hospitals):
        node = ClientNode(
            parse_node_config(
                {
                    "config": str(hospital.node_config),
                    "state-dir": str(tmp_path / hospital.slug),
                    **({"data-path": str(broken)} if i == 0 else {}),
                }
            ),
            cfg.protocol(),
            node_id=i,
        )
        reply, _ = node.handle(coord.requests(1, [i])[i], None)
        deliveries.append(Delivery(i, reply))
    outcome = coord.ingest(1, deliveries, {})
    assert outcome.accepted == [1, 2, 3]
    assert outcome.nodes[0].status == "unavailable"
    assert outcome.excluded[0] == f"client reports: {UNAVAILABLE_REASON}"
    local_log = (tmp_path / "cleveland" / "cleveland.log").read_text()
    assert message in local_log, local_log
