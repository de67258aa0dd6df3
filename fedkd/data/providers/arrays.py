"""``arrays``: a node's records as an ``.npz`` file of arrays, or a folder of images.

``data-path`` names either

* an ``.npz`` file (plain arrays, no pickles) with ``x``, numeric records of the
  federation's input shape ``(N, *input_shape)`` already scaled as the public data is;
  ``y``, integer labels in ``[0, num_classes)`` or class names; and optionally ``split``,
  ``"train"`` / ``"test"`` per record (the node's own declared hold-out); or
* a folder with one sub-folder per class, named exactly as a public class, holding PNG or
  JPEG images of the public input's height and width (nothing is resized: a wrong size is
  an error).  Images are read as grayscale for one-channel inputs and RGB for three, and
  scaled by ``pixel / scale``.  A folder declares no hold-out.

Without a declared hold-out, ``test-fraction`` of the records is held out at random
(``seed``).  Either way the local test set holds the node's own records only, exactly as
for the ``csv`` provider: never topped up; below ``min-local-test`` of them the node's
local accuracy is reported with its interval, as too few.
"""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fedkd.data.arrays import LabelledArrays
from fedkd.data.private import PrivateData, split_private, training_count
from fedkd.data.providers.base import PrivateDataProvider, register_provider
from fedkd.data.providers.csv_table import (
    SPLIT_VALUES,
    ProblemLog,
    option_problems,
)
from fedkd.data.public import PublicData

NPZ_KEYS = ("x", "y", "split")
_MODES = {1: "L", 3: "RGB"}

Records = tuple[LabelledArrays, np.ndarray | None]
"""Records and, when declared, which of them are the node's own test records."""


@register_provider
@dataclass(frozen=True)
class ArrayRecords(PrivateDataProvider):
    """Records from the ``.npz`` file or image folder at ``path``.

    ``min_records`` is the fewest training records accepted; ``scale`` divides image
    pixel values (it does not apply to an ``.npz`` file).
    """

    name = "arrays"
    path: str = ""
    test_fraction: float = 0.2
    min_local_test: int = 100
    seed: int = 0
    min_records: int = 10
    scale: float = 255.0

    def load(self, public: PublicData) -> PrivateData:
        root = Path(self.path).expanduser()
        sys.audit("fedkd.private_data.load", "arrays", str(root))
        source = str(root) if self.path else "arrays data provider"
        problems = ProblemLog()
        for line in option_problems(self.test_fraction, self.min_local_test):
            problems.add("option", line)
        if self.scale <= 0:
            problems.add("option", f"scale must be > 0, got {self.scale}")
        problems.raise_if_any(source)
        found = self._read(root, public, problems)
        if found is not None and not problems:
            n_train = training_count(len(found[0]), found[1], self.test_fraction)
            if n_train < self.min_records:
                problems.add(
                    "too few records",
                    f"{n_train} training records; min-records is {self.min_records}",
                )
        problems.raise_if_any(source)
        assert found is not None  # every way of finding nothing adds a problem
        return split_private(
            *found,
            test_fraction=self.test_fraction,
            min_test=self.min_local_test,
            seed=self.seed,
        )

    def _read(self, root: Path, public: PublicData, problems: ProblemLog) -> Records | None:
        if not self.path:
            problems.add("path", "no data-path given: name an .npz file or an image folder")
        elif root.is_dir():
            return read_image_folder(root, public, self.scale, problems)
        elif root.is_file() and root.suffix.lower() == ".npz":
            return read_npz(root, public, problems)
        elif root.exists():
            problems.add("path", f"{root} is neither an .npz file nor a folder")
        else:
            problems.add("path", f"data path {root} does not exist")
        return None


# --- .npz ----------------------------------------------------------------------------------


def read_npz(path: Path, public: PublicData, problems: ProblemLog) -> Records | None:
    """The records of the ``.npz`` file at ``path``; every problem goes to ``problems``."""
    arrays = _npz_arrays(path, problems)
    if arrays is None:
        return None
    x = _checked_x(arrays.get("x"), public, problems)
    n = None if x is None else len(x)
    y = _checked_y(arrays.get("y"), n, public, problems)
    is_test = _checked_split(arrays["split"], n, problems) if "split" in arrays else None
    if problems or x is None or y is None:
        return None
    return LabelledArrays(np.ascontiguousarray(x, dtype=np.float32), y), is_test


def _npz_arrays(path: Path, problems: ProblemLog) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                problems.add("unreadable", f"{path} holds one array, not named arrays")
                return None
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # Object arrays need pickles, which are refused: they land here as ValueError.
        problems.add("unreadable", f"{path} is not a readable .npz file of plain arrays: {exc}")
        return None
    for key in NPZ_KEYS[:2]:
        if key not in arrays:
            problems.add("missing key", f"{path} has no array {key!r}")
    for key in arrays:
        if key not in NPZ_KEYS:
            problems.add("unknown key", f"{path}: unknown array {key!r} (known: x, y, split)")
    return arrays


def _checked_x(x: np.ndarray | None, public: PublicData, problems: ProblemLog) -> np.ndarray | None:
    if x is None:
        return None
    shape = public.input_shape
    if x.dtype.kind not in "fiu":
        problems.add("x", f"x has dtype {x.dtype}, not numbers")
        return None
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        wanted = ", ".join(["N", *(str(d) for d in shape)])
        problems.add("x", f"x has shape {x.shape}; the federation's records need ({wanted})")
        return None
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    for i in np.flatnonzero(~finite):
        problems.add("non-finite", f"x[{i}] has non-finite values (NaN or infinity)")
    return x


def _checked_y(
    y: np.ndarray | None, n: int | None, public: PublicData, problems: ProblemLog
) -> np.ndarray | None:
    if y is None:
        return None
    if y.ndim != 1 or (n is not None and len(y) != n):
        problems.add("y", f"y has shape {y.shape}; it needs one label per record of x")
        return None
    if y.dtype.kind in "US":
        names = y.astype(str)
        known = np.isin(names, public.classes)
        classes = ", ".join(repr(c) for c in public.classes)
        for i in np.flatnonzero(~known):
            problems.add("label", f"y[{i}] = {str(names[i])!r} is not a class name ({classes})")
        return np.array(
            [public.classes.index(v) if v in public.classes else -1 for v in names], np.int64
        )
    if y.dtype.kind not in "iu":
        problems.add(
            "y",
            f"y has dtype {y.dtype}: labels are integers in [0, {public.num_classes}) "
            "or class names",
        )
        return None
    for i in np.flatnonzero((y < 0) | (y >= public.num_classes)):
        problems.add("label", f"y[{i}] = {y[i]} is outside [0, {public.num_classes})")
    return y.astype(np.int64)


def _checked_split(split: np.ndarray, n: int | None, problems: ProblemLog) -> np.ndarray | None:
    if split.ndim != 1 or (n is not None and len(split) != n) or split.dtype.kind not in "US":
        problems.add(
            "split",
            f"split has dtype {split.dtype} and shape {split.shape}; it needs one "
            "'train' or 'test' per record of x",
        )
        return None
    values = split.astype(str)
    for i in np.flatnonzero(~np.isin(values, SPLIT_VALUES)):
        problems.add(
            "split value", f"split[{i}] = {str(values[i])!r} is neither 'train' nor 'test'"
        )
    return np.asarray(values == "test")


# --- image folders -------------------------------------------------------------------------


def read_image_folder(
    root: Path, public: PublicData, scale: float, problems: ProblemLog
) -> Records | None:
    """The images under ``root/<class name>/``, in class order then file-name order."""
    shape = public.input_shape
    if len(shape) != 3 or shape[0] not in _MODES:
        problems.add(
            "input shape",
            f"{root} is an image folder but the federation's inputs have shape {shape}, "
            "not (channels 1 or 3, height, width)",
        )
        return None
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.add("stray file", f"{entry} is not inside a class folder")
        elif entry.name not in public.classes:
            classes = ", ".join(repr(c) for c in public.classes)
            problems.add("class folder", f"{entry}: {entry.name!r} is not a class ({classes})")
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for label, name in enumerate(public.classes):
        folder = root / name
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        for file in (f for f in files if not f.name.startswith(".")):
            pixels = _read_image(file, shape, problems)
            if pixels is not None:
                xs.append(pixels / np.float32(scale))
                ys.append(label)
    if problems:
        return None
    x = np.stack(xs) if xs else np.zeros((0, *shape), dtype=np.float32)
    return LabelledArrays(x.astype(np.float32), np.array(ys, dtype=np.int64)), None


def _read_image(file: Path, shape: tuple[int, ...], problems: ProblemLog) -> np.ndarray | None:
    """``file`` as float32 ``(channels, height, width)`` pixel values, or None."""
    channels, height, width = shape
    if not file.is_file():
        problems.add("unreadable image", f"{file} is not an image file")
        return None
    try:
        with Image.open(file) as image:
            if image.size != (width, height):
                problems.add(
                    "image size",
                    f"{file} is {image.width}×{image.height} pixels; the federation's images "
                    f"are {width}×{height} (resize it: nothing is resized here)",
                )
                return None
            pixels = np.asarray(image.convert(_MODES[channels]), dtype=np.float32)
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        problems.add("unreadable image", f"{file} is not a readable image: {exc}")
        return None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
