"""``csv``: a hospital's own table, a CSV file checked against a declared schema file.

The node's configuration names both files (``data = "csv"``, ``data-path = "ward.csv"``,
``data-schema = "heart.schema.toml"``).  The schema declares every column, the label and
its classes, and the normalisation constants: those are agreed by the federation in
advance and *never* computed from the node's private rows, so every node encodes the same
value to the same input.  A schema file looks like::

    name = "heart-disease-uci"        # free text
    min-records = 20                  # fewer training records is an error (default 1)
    label = "diagnosis"               # the label column
    classes = ["no heart disease", "heart disease"]  # label values in class order; must
                                      # equal the federation's public classes
    split = "split"                   # optional: a column of "train" / "test" (the node's
                                      # own declared hold-out); without it a random
                                      # test-fraction of the rows is held out

    [[columns]]                       # feature columns, in feature order
    name = "age"
    type = "int"                      # float | int | category | binary
    min = 0.0                         # optional bounds, checked on every row
    max = 120.0
    mean = 53.51081081081081          # encoded as (value - mean) / std
    std = 9.42...

    [[columns]]
    name = "sex"
    type = "binary"
    values = ["Female", "Male"]       # the two allowed values
    positive = "Male"                 # one column: 1.0 where value == positive, else 0.0

    [[columns]]
    name = "cp"
    type = "category"
    values = ["typical angina", "atypical angina", "non-anginal", "asymptomatic"]
                                      # one-hot, one column per value in this order

The CSV has a header row naming exactly the schema's columns (features, label, split; in
any order).  Cells are stripped of surrounding whitespace.  Every problem found (missing or
extra columns, empty cells, wrong types, values out of range, unknown categories, labels or
split values, too few records) is reported at once, each naming its column, 1-based data
row and value.
"""

from __future__ import annotations

import csv
import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.private import PrivateData, split_private, training_count
from fedkd.data.providers.base import (
    DataValidationError,
    PrivateDataProvider,
    register_provider,
)
from fedkd.data.public import PublicData

COLUMN_TYPES = ("float", "int", "category", "binary")
SPLIT_VALUES = ("train", "test")
MAX_LINES_PER_KIND = 10
_SCHEMA_KEYS = ("name", "min-records", "label", "classes", "split", "columns")
_COLUMN_KEYS = {
    "float": ("name", "type", "min", "max", "mean", "std"),
    "int": ("name", "type", "min", "max", "mean", "std"),
    "category": ("name", "type", "values"),
    "binary": ("name", "type", "values", "positive"),
}


# --- problems shared by the file-reading providers ---------------------------------------


class ProblemLog:
    """Problems found in a node's records, grouped by kind and capped per kind.

    One broken column can fail every row; the first ``cap`` lines of a kind say what is
    wrong, and a count says how often, so the log stays readable.
    """

    def __init__(self, cap: int = MAX_LINES_PER_KIND) -> None:
        self._cap = cap
        self._lines: dict[str, list[str]] = {}
        self._hidden: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        shown = self._lines.setdefault(kind, [])
        if len(shown) < self._cap:
            shown.append(message)
        else:
            self._hidden[kind] = self._hidden.get(kind, 0) + 1

    def __bool__(self) -> bool:
        return bool(self._lines)

    def lines(self) -> list[str]:
        out: list[str] = []
        for kind, shown in self._lines.items():
            out.extend(shown)
            if kind in self._hidden:
                out.append(f"... and {self._hidden[kind]} more {kind} problem(s)")
        return out

    def raise_if_any(self, source: str) -> None:
        """Raise :class:`DataValidationError` listing every problem, if there is one."""
        if self:
            raise DataValidationError(source, self.lines())


def option_problems(test_fraction: float, min_local_test: int) -> list[str]:
    """What is wrong with the split options common to the file-reading providers."""
    problems = []
    if not 0.0 <= test_fraction < 1.0:
        problems.append(f"test-fraction must be in [0, 1), got {test_fraction}")
    if min_local_test < 0:
        problems.append(f"min-local-test must be >= 0, got {min_local_test}")
    return problems


# --- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One declared feature column.

    ``mean``/``std`` (and the optional ``min``/``max`` bounds) apply to ``float`` and
    ``int`` columns; ``values`` to ``category`` (one-hot in this order) and ``binary``
    (the two allowed values, ``positive`` encoding as 1.0).
    """

    name: str
    type: str
    mean: float = 0.0
    std: float = 1.0
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    positive: str = ""

    @property
    def numeric(self) -> bool:
        return self.type in ("float", "int")

    @property
    def width(self) -> int:
        """Encoded feature columns: one per category value, else one."""
        return len(self.values) if self.type == "category" else 1


@dataclass(frozen=True)
class TableSchema:
    """A table's declared columns, label, classes and optional split column."""

    name: str
    label: str
    classes: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    split: str = ""
    min_records: int = 1

    @property
    def width(self) -> int:
        """Length of an encoded record."""
        return sum(c.width for c in self.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column the CSV must have: features, label, then the split column if any."""
        return (*(c.name for c in self.columns), self.label, *((self.split,) if self.split else ()))


def read_schema(path: Path) -> TableSchema:
    """The schema in the TOML file at ``path``.

    Raises
    ------
    DataValidationError
        The file is missing, not TOML, or declares something invalid; every problem listed.
    """
    schema, problems = _load_schema(path)
    if schema is None:
        raise DataValidationError(str(path), problems)
    return schema


def write_schema(schema: TableSchema, path: Path) -> Path:
    """Write ``schema`` as TOML that :func:`read_schema` reads back unchanged.

    Floats are written as Python's ``repr``, which round-trips exactly: the constants a
    node reads are bit for bit the ones written.
    """
    lines = [f"name = {toml_value(schema.name)}", f"min-records = {schema.min_records}"]
    lines += [f"label = {toml_value(schema.label)}", f"classes = {toml_value(schema.classes)}"]
    if schema.split:
        lines.append(f"split = {toml_value(schema.split)}")
    for column in schema.columns:
        lines += [
            "",
            "[[columns]]",
            f"name = {toml_value(column.name)}",
            f"type = {toml_value(column.type)}",
        ]
        if column.numeric:
            bounds = {"min": column.min, "max": column.max}
            lines += [f"{k} = {toml_value(v)}" for k, v in bounds.items() if v is not None]
            lines += [f"mean = {toml_value(column.mean)}", f"std = {toml_value(column.std)}"]
        else:
            lines.append(f"values = {toml_value(column.values)}")
        if column.type == "binary":
            lines.append(f"positive = {toml_value(column.positive)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def toml_value(value: str | float | tuple[str, ...]) -> str:
    """``value`` as a TOML value: a float as its exact ``repr``, a string escaped."""
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    # A TOML basic string: backslash and quote escaped, control characters as \uXXXX.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


def _load_schema(path: Path) -> tuple[TableSchema | None, list[str]]:
    if not path.is_file():
        return None, [f"schema file {path} does not exist"]
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return None, [f"schema file {path} is not valid TOML: {exc}"]
    return _parse_schema(doc, f"schema {path}")


def _parse_schema(doc: Mapping[str, object], where: str) -> tuple[TableSchema | None, list[str]]:
    problems = [f"{where}: unknown key {k!r}" for k in doc if k not in _SCHEMA_KEYS]
    name = doc.get("name", "")
    label, split = doc.get("label"), doc.get("split", "")
    min_records = doc.get("min-records", 1)
    classes = _string_list(doc.get("classes"))
    if not isinstance(name, str):
        problems.append(f"{where}: name must be a string")
    if not isinstance(label, str) or not label:
        problems.append(f"{where}: label must name the label column")
    if not isinstance(split, str):
        problems.append(f"{where}: split must name the split column")
    if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 1:
        problems.append(f"{where}: min-records must be an integer >= 1, got {min_records!r}")
    if not classes or len(set(classes)) != len(classes):
        problems.append(f"{where}: classes must be a non-empty list of distinct strings")
    raw_columns = doc.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        problems.append(f"{where}: no [[columns]] declared")
        raw_columns = []
    columns = []
    for i, raw in enumerate(raw_columns, start=1):
        column, column_problems = _parse_column(raw, f"{where}: column {i}")
        problems += column_problems
        if column is not None:
            columns.append(column)
    names = [c.name for c in columns] + [v for v in (label, split) if isinstance(v, str)]
    problems += [
        f"{where}: column {n!r} is declared more than once"
        for n in sorted({n for n in names if n and names.count(n) > 1})
    ]
    if problems:
        return None, problems
    assert isinstance(name, str) and isinstance(label, str) and isinstance(split, str)
    assert isinstance(min_records, int) and classes is not None
    schema = TableSchema(name, label, classes, tuple(columns), split, min_records)
    return schema, []


def _parse_column(raw: object, where: str) -> tuple[ColumnSpec | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where} is not a table"]
    name, kind = raw.get("name"), raw.get("type")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    else:
        return None, [f"{where}: no name"]
    if kind not in COLUMN_TYPES:
        return None, [f"{where}: unknown type {kind!r} (known: {', '.join(COLUMN_TYPES)})"]
    assert isinstance(kind, str)
    problems = [
        f"{where}: unknown key {k!r} for a {kind} column"
        for k in raw
        if k not in _COLUMN_KEYS[kind]
    ]
    if kind in ("float", "int"):
        column, more = _numeric_column(name, kind, raw, where)
    else:
        column, more = _choice_column(name, kind, raw, where)
    problems += more
    return (None if problems else column), problems


def _numeric_column(
    name: str, kind: str, raw: Mapping[str, object], where: str
) -> tuple[ColumnSpec, list[str]]:
    problems = []
    mean, std = _number(raw.get("mean")), _number(raw.get("std"))
    low, high = _number(raw.get("min")), _number(raw.get("max"))
    if mean is None or std is None:
        problems.append(
            f"{where}: {kind} columns need a numeric mean and std (declared, never "
            "computed from the rows)"
        )
    elif std <= 0:
        problems.append(f"{where}: std must be > 0, got {std!r}")
    for key, value in (("min", low), ("max", high)):
        if key in raw and value is None:
            problems.append(f"{where}: {key} must be a number, got {raw[key]!r}")
    if low is not None and high is not None and low > high:
        problems.append(f"{where}: min {low!r} is above max {high!r}")
    column = ColumnSpec(name, kind, mean=mean or 0.0, std=std or 1.0, min=low, max=high)
    return column, problems


def _choice_column(
    name: str, kind: str, raw: Mapping[str, object], where: str
) -> tuple[ColumnSpec, list[str]]:
    values = _string_list(raw.get("values"))
    positive = raw.get("positive", "")
    problems = []
    if not values or len(set(values)) != len(values):
        problems.append(f"{where}: a {kind} column needs values, a list of distinct strings")
    elif kind == "binary" and len(values) != 2:
        problems.append(f"{where}: a binary column has exactly 2 values, got {len(values)}")
    if kind == "binary" and (not isinstance(positive, str) or positive not in (values or ())):
        problems.append(f"{where}: positive must be one of its values, got {positive!r}")
    column = ColumnSpec(name, kind, values=values or (), positive=str(positive))
    return column, problems


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a finite TOML number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _string_list(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def fit_problems(schema: TableSchema, public: PublicData, where: str) -> list[str]:
    """What keeps records of ``schema`` from joining the federation of ``public``."""
    problems = []
    if schema.classes != public.classes:
        problems.append(
            f"{where}: classes {list(schema.classes)} are not the federation's classes "
            f"{list(public.classes)} (same names, same order)"
        )
    if public.input_shape != (schema.width,):
        problems.append(
            f"{where}: encodes {schema.width} feature columns but the federation's inputs "
            f"have shape {public.input_shape}"
        )
    return problems


# --- the table -----------------------------------------------------------------------------


def encode_rows(schema: TableSchema, rows: Sequence[Mapping[str, str]]) -> np.ndarray:
    """Validated ``rows`` as float32 records of width ``schema.width``.

    Computed in float64 and cast once at the end, so a value encodes exactly as the
    built-in sources encode it given the same constants.
    """
    blocks: list[np.ndarray] = []
    for column in schema.columns:
        values = [row[column.name] for row in rows]
        if column.numeric:
            col = np.array([float(v) for v in values], dtype=np.float64)
            blocks.append(((col - column.mean) / column.std)[:, None])
        elif column.type == "category":
            blocks.append(np.array([[float(v == c) for c in column.values] for v in values]))
        else:
            blocks.append(np.array([[float(v == column.positive)] for v in values]))
        # An empty table still encodes to the right width.
        blocks[-1] = blocks[-1].reshape(len(rows), column.width)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def read_rows(path: Path, schema: TableSchema, problems: ProblemLog) -> list[dict[str, str]]:
    """The CSV's data rows as stripped cells by column; every problem goes to ``problems``."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            table = [row for row in csv.reader(fh)]
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.add("unreadable", f"{path} is not a readable UTF-8 CSV file: {exc}")
        return []
    if not table:
        problems.add("unreadable", f"{path} is empty: it needs a header row")
        return []
    header = [h.strip() for h in table[0]]
    _header_problems(header, schema, problems)
    columns = {name: header.index(name) for name in schema.column_names if name in header}
    rows = []
    for number, cells in enumerate(table[1:], start=1):
        if not any(c.strip() for c in cells):
            continue  # a blank line (often the last one) is no record
        if len(cells) != len(header):
            problems.add(
                "row length", f"row {number}: {len(cells)} fields, the header has {len(header)}"
            )
            continue
        row = {name: cells[i].strip() for name, i in columns.items()}
        _check_row(number, row, schema, problems)
        rows.append(row)
    return rows


def _header_problems(header: list[str], schema: TableSchema, problems: ProblemLog) -> None:
    for name in sorted({h for h in header if header.count(h) > 1}):
        problems.add("duplicate column", f"column {name!r} appears more than once in the header")
    for name in schema.column_names:
        if name not in header:
            problems.add("missing column", f"missing column {name!r} (declared in the schema)")
    for name in header:
        if name not in schema.column_names:
            problems.add("extra column", f"column {name!r} is not in the schema")


def _check_row(number: int, row: Mapping[str, str], schema: TableSchema, log: ProblemLog) -> None:
    for name, cell in row.items():
        if not cell:
            log.add("empty cell", f"row {number}, column {name!r}: empty cell")
    for column in schema.columns:
        cell = row.get(column.name, "")
        if cell:
            _check_cell(f"row {number}, column {column.name!r}", cell, column, log)
    label = row.get(schema.label, "")
    if label and label not in schema.classes:
        classes = ", ".join(repr(c) for c in schema.classes)
        log.add(
            "unknown label",
            f"row {number}, column {schema.label!r}: unknown label {label!r} (classes: {classes})",
        )
    split = row.get(schema.split, "") if schema.split else ""
    if split and split not in SPLIT_VALUES:
        log.add(
            "split value",
            f"row {number}, column {schema.split!r}: {split!r} is neither 'train' nor 'test'",
        )


def _check_cell(where: str, cell: str, column: ColumnSpec, log: ProblemLog) -> None:
    if not column.numeric:
        if cell not in column.values:
            allowed = ", ".join(repr(v) for v in column.values)
            log.add("unknown value", f"{where}: unknown value {cell!r} (allowed: {allowed})")
        return
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        log.add("wrong type", f"{where}: {cell!r} is not a number")
    elif column.type == "int" and not value.is_integer():
        log.add("wrong type", f"{where}: {cell!r} is not an integer")
    elif column.min is not None and value < column.min:
        log.add("out of range", f"{where}: {cell!r} is below the declared min {column.min!r}")
    elif column.max is not None and value > column.max:
        log.add("out of range", f"{where}: {cell!r} is above the declared max {column.max!r}")


# --- the provider --------------------------------------------------------------------------


@register_provider
@dataclass(frozen=True)
class CsvTable(PrivateDataProvider):
    """Records from the CSV at ``path``, validated and encoded by the schema at ``schema``.

    Without a split column, ``test_fraction`` of the records is held out at random
    (``seed``).  Either way the local test set holds the node's own records only; below
    ``min_local_test`` of them its local accuracy is reported with its interval, as too few.
    """

    name = "csv"
    path: str = ""
    schema: str = ""
    test_fraction: float = 0.2
    min_local_test: int = 100
    seed: int = 0

    def load(self, public: PublicData) -> PrivateData:
        csv_path, schema_path = Path(self.path).expanduser(), Path(self.schema).expanduser()
        sys.audit("fedkd.private_data.load", "csv", str(csv_path))
        source = str(csv_path) if self.path else "csv data provider"
        schema = self._checked_schema(schema_path, public, source)
        problems = ProblemLog()
        rows = read_rows(csv_path, schema, problems)
        is_test = (
            np.array([row[schema.split] == "test" for row in rows], dtype=bool)
            if schema.split
            else None
        )
        n_train = training_count(len(rows), is_test, self.test_fraction)
        if not problems and n_train < schema.min_records:
            problems.add(
                "too few records",
                f"{n_train} training records; the schema's min-records is {schema.min_records}",
            )
        problems.raise_if_any(source)
        labels = np.array([schema.classes.index(row[schema.label]) for row in rows], np.int64)
        records = LabelledArrays(encode_rows(schema, rows), labels)
        return split_private(
            records,
            is_test,
            test_fraction=self.test_fraction,
            min_test=self.min_local_test,
            seed=self.seed,
        )

    def _checked_schema(self, schema_path: Path, public: PublicData, source: str) -> TableSchema:
        """The schema, once options, schema and the CSV's existence all check out."""
        problems = option_problems(self.test_fraction, self.min_local_test)
        if not self.path:
            problems.append("no data-path given: name the CSV file")
        elif not Path(self.path).expanduser().is_file():
            problems.append(f"data file {Path(self.path).expanduser()} does not exist")
        schema = None
        if not self.schema:
            problems.append("no data-schema given: name the schema TOML file")
        else:
            schema, schema_problems = _load_schema(schema_path)
            problems += schema_problems
            if schema is not None:
                problems += fit_problems(schema, public, f"schema {schema_path}")
        if problems or schema is None:
            raise DataValidationError(source, problems)
        return schema
