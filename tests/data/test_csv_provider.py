"""The ``csv`` provider: declared encoding, declared hold-out, and every problem named."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from fedkd.data.arrays import LabelledArrays
from fedkd.data.private import held_out_by_record
from fedkd.data.providers import PROVIDER_REGISTRY, DataValidationError, make_provider
from fedkd.data.providers.csv_table import ColumnSpec, CsvTable, read_schema, write_schema
from fedkd.data.public import PublicData
from fedkd.data.transfer import make_transfer_set

SCHEMA = """\
name = "ward"
min-records = 2
label = "outcome"
classes = ["healthy", "sick"]
split = "split"

[[columns]]
name = "age"
type = "float"
min = 0.0
max = 120.0
mean = 50.0
std = 10.0

[[columns]]
name = "visits"
type = "int"
min = 0
mean = 2.0
std = 0.5

[[columns]]
name = "sex"
type = "binary"
values = ["F", "M"]
positive = "M"

[[columns]]
name = "ward"
type = "category"
values = ["a", "b", "c"]
"""

HEADER = "age,visits,sex,ward,outcome,split"
ROWS = [
    "60,3,M,b,sick,train",
    "45.5,1,F,a,healthy,test",
    "50,2,F,c,sick,train",
    "70,4,M,a,healthy,train",
    "30,0,M,c,sick,test",
]
# The rows above encoded by hand: (age - 50) / 10, (visits - 2) / 0.5, sex == M, one-hot ward.
ENCODED = np.array(
    [
        [1.0, 2.0, 1.0, 0.0, 1.0, 0.0],
        [-0.45, -2.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        [2.0, 4.0, 1.0, 1.0, 0.0, 0.0],
        [-2.0, -4.0, 1.0, 0.0, 0.0, 1.0],
    ],
    dtype=np.float32,
)
LABELS = np.array([1, 0, 1, 0, 1], dtype=np.int64)


def tiny_public(width: int = 6) -> PublicData:
    """Two classes, 40 public test rows whose first feature is the row's index."""
    x = np.zeros((40, width), dtype=np.float32)
    x[:, 0] = np.arange(40)
    return PublicData(
        name="tiny",
        classes=("healthy", "sick"),
        transfer=make_transfer_set("tiny/transfer", np.ones((8, width), dtype=np.float32)),
        test=LabelledArrays(x, np.arange(40, dtype=np.int64) % 2),
    )


def write(
    tmp_path: Path, rows: list[str], *, schema: str = SCHEMA, header: str = HEADER
) -> CsvTable:
    csv_path, schema_path = tmp_path / "ward.csv", tmp_path / "ward.schema.toml"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    schema_path.write_text(schema)
    return CsvTable(path=str(csv_path), schema=str(schema_path), min_local_test=0)


def problems(provider: CsvTable, public: PublicData | None = None) -> list[str]:
    with pytest.raises(DataValidationError) as caught:
        provider.load(public or tiny_public())
    assert caught.value.source == provider.path
    return list(caught.value.problems)


# --- a valid table -----------------------------------------------------------------------


def test_rows_encode_with_the_declared_constants_and_the_split_column_is_honoured(
    tmp_path: Path,
) -> None:
    data = write(tmp_path, ROWS).load(tiny_public())
    # Train: rows 1, 3, 4 in file order; own test: rows 2 and 5 in file order.
    assert np.array_equal(data.train.x, ENCODED[[0, 2, 3]])
    assert np.array_equal(data.train.y, LABELS[[0, 2, 3]])
    assert np.array_equal(data.test.x, ENCODED[[1, 4]])
    assert np.array_equal(data.test.y, LABELS[[1, 4]])
    assert (len(data.test), data.min_test, data.too_few) == (2, 0, False)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64


def test_whitespace_and_crlf_and_column_order_do_not_matter(tmp_path: Path) -> None:
    header = "split,outcome,ward,sex,visits,age"
    rows = [",".join(reversed(r.split(","))) for r in ROWS]
    rows[0] = " train , sick , b , M , 3 , 60 "
    provider = write(tmp_path, rows, header=header)
    Path(provider.path).write_text("\r\n".join([header, *rows]) + "\r\n")
    data = provider.load(tiny_public())
    assert np.array_equal(data.train.x, ENCODED[[0, 2, 3]])


def test_the_local_test_set_is_never_topped_up_below_the_minimum(tmp_path: Path) -> None:
    provider = write(tmp_path, ROWS)
    data = CsvTable(path=provider.path, schema=provider.schema, min_local_test=12).load(
        tiny_public()
    )
    # Two own test records, minimum 12: the test set stays those two (no public row is
    # drawn in); the node's accuracy is flagged as measured on too few.
    assert np.array_equal(data.test.x, ENCODED[[1, 4]])
    assert np.array_equal(data.test.y, LABELS[[1, 4]])
    assert (len(data.test), data.min_test, data.too_few) == (2, 12, True)


def test_without_a_split_column_a_fraction_is_held_out_record_by_record(
    tmp_path: Path,
) -> None:
    schema = SCHEMA.replace('split = "split"\n', "")
    rows = [r.rsplit(",", 1)[0] for r in ROWS] * 2  # ten records
    provider = write(tmp_path, rows, schema=schema, header=HEADER.rsplit(",", 1)[0])
    public = tiny_public()
    data = CsvTable(
        path=provider.path, schema=provider.schema, test_fraction=0.3, min_local_test=5, seed=3
    ).load(public)
    everything = LabelledArrays(
        np.concatenate([ENCODED, ENCODED]), np.concatenate([LABELS, LABELS])
    )
    held = held_out_by_record(everything, 0.3, seed=3)
    # Identical records hash alike: both copies go the same way.
    assert np.array_equal(held[:5], held[5:])
    assert len(data.train) == int((~held).sum()) and len(data.test) == int(held.sum())
    assert data.too_few == (int(held.sum()) < 5)
    assert np.array_equal(data.train.x, everything.x[~held])
    assert np.array_equal(data.test.x, everything.x[held])


def test_make_provider_takes_kebab_case_options(tmp_path: Path) -> None:
    written = write(tmp_path, ROWS)
    provider = make_provider(
        "csv",
        {"path": written.path, "schema": written.schema, "min-local-test": 4, "seed": 1},
    )
    assert PROVIDER_REGISTRY["csv"] is CsvTable
    assert isinstance(provider, CsvTable)
    assert (provider.min_local_test, provider.seed, provider.test_fraction) == (4, 1, 0.2)
    data = provider.load(tiny_public())
    assert (len(data.train), len(data.test), data.too_few) == (3, 2, True)
    with pytest.raises(ValueError, match="must be float"):
        make_provider("csv", {"path": written.path, "test-fraction": "0.2"})


def test_the_load_is_audited_before_any_file_is_opened(tmp_path: Path) -> None:
    provider = write(tmp_path, ROWS)
    events: list[tuple[str, str]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "fedkd.private_data.load" and args[0] == "csv":
            events.append((event, str(args[1])))
        elif event == "open" and str(args[0]).startswith(str(tmp_path)):
            events.append((event, str(args[0])))

    sys.addaudithook(hook)  # hooks cannot be removed; this one only records
    provider.load(tiny_public())
    loads = [i for i, (event, _) in enumerate(events) if event == "fedkd.private_data.load"]
    opens = [i for i, (event, _) in enumerate(events) if event == "open"]
    assert events[loads[0]][1] == provider.path
    assert loads and opens and loads[0] < min(opens)


def test_a_written_schema_reads_back_unchanged(tmp_path: Path) -> None:
    provider = write(tmp_path, ROWS)
    schema = read_schema(Path(provider.schema))
    assert schema.width == 6 and schema.min_records == 2
    assert schema.column_names == ("age", "visits", "sex", "ward", "outcome", "split")
    # Constants that are no short decimal must survive the round trip bit for bit.
    awkward = ColumnSpec("x", "float", mean=0.1 + 0.2, std=1 / 3, max=1e300)
    extended = dataclasses.replace(schema, columns=(*schema.columns, awkward))
    assert read_schema(write_schema(extended, tmp_path / "again.toml")) == extended


# --- the schema file ---------------------------------------------------------------------


def test_missing_schema_file(tmp_path: Path) -> None:
    provider = write(tmp_path, ROWS)
    missing = CsvTable(path=provider.path, schema=str(tmp_path / "nope.toml"))
    assert problems(missing) == [f"schema file {tmp_path / 'nope.toml'} does not exist"]


def test_unparseable_schema_file(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, ROWS, schema='label = "outcome\n'))
    assert found.startswith(f"schema file {tmp_path / 'ward.schema.toml'} is not valid TOML")


def test_unknown_column_type_and_unknown_keys(tmp_path: Path) -> None:
    schema = SCHEMA.replace('type = "float"', 'type = "text"').replace(
        'name = "ward"\nmin', 'name = "ward"\nlabels = 1\nmin'
    )
    where = f"schema {tmp_path / 'ward.schema.toml'}"
    assert problems(write(tmp_path, ROWS, schema=schema)) == [
        f"{where}: unknown key 'labels'",
        f"{where}: column 1 ('age'): unknown type 'text' (known: float, int, category, binary)",
    ]


def test_numeric_column_without_mean_or_std(tmp_path: Path) -> None:
    schema = SCHEMA.replace("mean = 2.0\n", "")
    (found,) = problems(write(tmp_path, ROWS, schema=schema))
    assert found.endswith(
        "column 2 ('visits'): int columns need a numeric mean and std "
        "(declared, never computed from the rows)"
    )


def test_non_positive_std(tmp_path: Path) -> None:
    schema = SCHEMA.replace("std = 10.0", "std = 0.0").replace("std = 0.5", "std = -1")
    found = problems(write(tmp_path, ROWS, schema=schema))
    assert [p.split(": ", 1)[1] for p in found] == [
        "column 1 ('age'): std must be > 0, got 0.0",
        "column 2 ('visits'): std must be > 0, got -1.0",
    ]


def test_category_without_values_and_binary_with_a_bad_positive(tmp_path: Path) -> None:
    schema = SCHEMA.replace('values = ["a", "b", "c"]', "").replace(
        'positive = "M"', 'positive = "X"'
    )
    found = problems(write(tmp_path, ROWS, schema=schema))
    assert [p.split(": ", 1)[1] for p in found] == [
        "column 3 ('sex'): positive must be one of its values, got 'X'",
        "column 4 ('ward'): a category column needs values, a list of distinct strings",
    ]


def test_classes_must_be_the_federations(tmp_path: Path) -> None:
    schema = SCHEMA.replace('["healthy", "sick"]', '["sick", "healthy"]')
    (found,) = problems(write(tmp_path, ROWS, schema=schema))
    assert found == (
        f"schema {tmp_path / 'ward.schema.toml'}: classes ['sick', 'healthy'] are not the "
        "federation's classes ['healthy', 'sick'] (same names, same order)"
    )


def test_encoded_width_must_be_the_federations_input_width(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, ROWS), tiny_public(width=15))
    assert found.endswith("encodes 6 feature columns but the federation's inputs have shape (15,)")


# --- the CSV file ------------------------------------------------------------------------


def test_missing_csv_file(tmp_path: Path) -> None:
    provider = write(tmp_path, ROWS)
    Path(provider.path).unlink()
    assert problems(provider) == [f"data file {provider.path} does not exist"]


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    header = "id,age,visits,sex,outcome,split,notes"
    rows = [f"7,{r.split(',', 3)[0]},1,M,sick,train,x" for r in ROWS]
    assert problems(write(tmp_path, rows, header=header)) == [
        "missing column 'ward' (declared in the schema)",
        "column 'id' is not in the schema",
        "column 'notes' is not in the schema",
    ]


def test_empty_cells(tmp_path: Path) -> None:
    rows = [*ROWS[:1], "45.5,,F,a,healthy,test", ",2,F,c,,train"]
    assert problems(write(tmp_path, rows)) == [
        "row 2, column 'visits': empty cell",
        "row 3, column 'age': empty cell",
        "row 3, column 'outcome': empty cell",
    ]


def test_wrong_types(tmp_path: Path) -> None:
    rows = ["old,3,M,b,sick,train", "45.5,2.5,F,a,healthy,test", "nan,1e400,F,c,sick,train"]
    assert problems(write(tmp_path, rows)) == [
        "row 1, column 'age': 'old' is not a number",
        "row 2, column 'visits': '2.5' is not an integer",
        "row 3, column 'age': 'nan' is not a number",
        "row 3, column 'visits': '1e400' is not a number",
    ]


def test_integral_spellings_are_integers(tmp_path: Path) -> None:
    rows = [r.replace(",3,", ",3.0,") for r in ROWS]
    data = write(tmp_path, rows).load(tiny_public())
    assert np.array_equal(data.train.x, ENCODED[[0, 2, 3]])


def test_out_of_range_values(tmp_path: Path) -> None:
    rows = ["130,3,M,b,sick,train", "45.5,-1,F,a,healthy,test", "-0.5,1,F,c,sick,train"]
    assert problems(write(tmp_path, rows)) == [
        "row 1, column 'age': '130' is above the declared max 120.0",
        "row 2, column 'visits': '-1' is below the declared min 0.0",
        "row 3, column 'age': '-0.5' is below the declared min 0.0",
    ]


def test_unknown_category_and_binary_values(tmp_path: Path) -> None:
    rows = ["60,3,m,b,sick,train", "45.5,1,F,d,healthy,test", *ROWS[2:]]
    assert problems(write(tmp_path, rows)) == [
        "row 1, column 'sex': unknown value 'm' (allowed: 'F', 'M')",
        "row 2, column 'ward': unknown value 'd' (allowed: 'a', 'b', 'c')",
    ]


def test_unknown_labels(tmp_path: Path) -> None:
    rows = [*ROWS[:3], "70,4,M,a,maybe,train"]
    assert problems(write(tmp_path, rows)) == [
        "row 4, column 'outcome': unknown label 'maybe' (classes: 'healthy', 'sick')"
    ]


def test_bad_split_values(tmp_path: Path) -> None:
    rows = [*ROWS[:3], "70,4,M,a,healthy,holdout", "30,0,M,c,sick,Test"]
    assert problems(write(tmp_path, rows)) == [
        "row 4, column 'split': 'holdout' is neither 'train' nor 'test'",
        "row 5, column 'split': 'Test' is neither 'train' nor 'test'",
    ]


def test_too_few_training_records(tmp_path: Path) -> None:
    schema = SCHEMA.replace("min-records = 2", "min-records = 5")
    assert problems(write(tmp_path, ROWS, schema=schema)) == [
        "3 training records; the schema's min-records is 5"
    ]


def test_rows_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    rows = [*ROWS[:4], "30,0,M,c,sick"]
    assert problems(write(tmp_path, rows)) == ["row 5: 5 fields, the header has 6"]


def test_every_problem_is_reported_at_once_and_each_kind_is_capped(tmp_path: Path) -> None:
    rows = [",1,F,a,healthy,train"] * 25 + ["60,x,M,b,sick,train", "60,3,M,b,sick,later"]
    found = problems(write(tmp_path, rows))
    assert found[:10] == [f"row {i}, column 'age': empty cell" for i in range(1, 11)]
    assert found[10:] == [
        "... and 15 more empty cell problem(s)",
        "row 26, column 'visits': 'x' is not a number",
        "row 27, column 'split': 'later' is neither 'train' nor 'test'",
    ]


def test_options_schema_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    provider = CsvTable(path=str(tmp_path / "none.csv"), schema="", test_fraction=1.5)
    assert problems(provider) == [
        "test-fraction must be in [0, 1), got 1.5",
        f"data file {tmp_path / 'none.csv'} does not exist",
        "no data-schema given: name the schema TOML file",
    ]
