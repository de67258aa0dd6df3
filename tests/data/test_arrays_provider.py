"""The ``arrays`` provider: ``.npz`` records and image folders, and every problem named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedkd.data.arrays import LabelledArrays
from fedkd.data.private import held_out_by_record
from fedkd.data.providers import PROVIDER_REGISTRY, DataValidationError, make_provider
from fedkd.data.providers.arrays import ArrayRecords
from fedkd.data.public import PublicData, PublicDataSpec, load_public_data
from fedkd.data.transfer import make_transfer_set


@pytest.fixture(scope="module")
def digits() -> PublicData:
    return load_public_data(PublicDataSpec(dataset="digits"))


def records(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    return x, rng.integers(0, 10, n).astype(np.int64)


def npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "records.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return str(path)


def problems(provider: ArrayRecords, public: PublicData) -> list[str]:
    with pytest.raises(DataValidationError) as caught:
        provider.load(public)
    return list(caught.value.problems)


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


# --- .npz --------------------------------------------------------------------------------


def test_npz_with_integer_labels_holds_out_record_by_record(
    tmp_path: Path, digits: PublicData
) -> None:
    x, y = records(30)
    data = ArrayRecords(path=npz(tmp_path, x=x, y=y), seed=4).load(digits)
    held = held_out_by_record(LabelledArrays(x, y), 0.2, seed=4)
    assert 0 < held.sum() < 30
    # Only the node's own held-out records: below the default minimum of 100, flagged.
    assert (len(data.train), len(data.test), data.too_few) == (
        int((~held).sum()),
        int(held.sum()),
        True,
    )
    assert np.array_equal(data.train.x, x[~held]) and np.array_equal(data.train.y, y[~held])
    assert np.array_equal(data.test.x, x[held]) and np.array_equal(data.test.y, y[held])
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64


def test_one_record_more_changes_the_training_set_by_that_record_only(
    tmp_path: Path, digits: PublicData
) -> None:
    x, y = records(41)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = ArrayRecords(path=npz(tmp_path / "a", x=x[:40], y=y[:40]), seed=2).load(digits)
    b = ArrayRecords(path=npz(tmp_path / "b", x=x, y=y), seed=2).load(digits)
    rows_a = {r.tobytes() for r in a.train.x}
    rows_b = {r.tobytes() for r in b.train.x}
    assert rows_a <= rows_b and len(rows_b - rows_a) <= 1


def test_npz_with_class_names_and_a_declared_split(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(12)
    names = np.array([str(v) for v in y])
    split = np.array(["train"] * 8 + ["test", "train", "test", "test"])
    path = npz(tmp_path, x=x.astype(np.float64), y=names, split=split)
    data = ArrayRecords(path=path, min_local_test=10, min_records=9).load(digits)
    is_test = split == "test"
    assert np.array_equal(data.train.x, x[~is_test]) and np.array_equal(data.train.y, y[~is_test])
    assert np.array_equal(data.test.x, x[is_test]) and np.array_equal(data.test.y, y[is_test])
    # Three own test records against a minimum of 10: never topped up, flagged.
    assert (len(data.train), len(data.test), data.min_test, data.too_few) == (9, 3, 10, True)


def test_make_provider_takes_kebab_case_options(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(4)
    provider = make_provider(
        "arrays", {"path": npz(tmp_path, x=x, y=y), "min-records": 2, "min-local-test": 0}
    )
    assert PROVIDER_REGISTRY["arrays"] is ArrayRecords
    assert isinstance(provider, ArrayRecords) and provider.min_records == 2
    data = provider.load(digits)
    held = int(held_out_by_record(LabelledArrays(x, y), 0.2, seed=0).sum())
    assert (len(data.train), len(data.test), data.too_few) == (4 - held, held, False)


def test_the_load_is_audited(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(20)
    path = npz(tmp_path, x=x, y=y)
    seen: list[tuple[object, ...]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "fedkd.private_data.load" and args[0] == "arrays":
            seen.append(args)

    sys.addaudithook(hook)  # hooks cannot be removed; this one only records
    ArrayRecords(path=path).load(digits)
    assert seen == [("arrays", path)]


def test_path_problems(tmp_path: Path, digits: PublicData) -> None:
    assert problems(ArrayRecords(), digits) == [
        "no data-path given: name an .npz file or an image folder"
    ]
    missing = tmp_path / "gone.npz"
    assert problems(ArrayRecords(path=str(missing)), digits) == [
        f"data path {missing} does not exist"
    ]
    text = tmp_path / "records.csv"
    text.write_text("x,y\n")
    assert problems(ArrayRecords(path=str(text)), digits) == [
        f"{text} is neither an .npz file nor a folder"
    ]
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    (found,) = problems(ArrayRecords(path=str(broken)), digits)
    assert found.startswith(f"{broken} is not a readable .npz file of plain arrays")


def test_missing_and_unknown_keys(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(20)
    path = npz(tmp_path, x=x, labels=y)
    assert problems(ArrayRecords(path=path), digits) == [
        f"{path} has no array 'y'",
        f"{path}: unknown array 'labels' (known: x, y, split)",
    ]


def test_wrong_x_shape_and_type(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(20)
    path = npz(tmp_path, x=x.reshape(20, 64), y=y)
    assert problems(ArrayRecords(path=path), digits) == [
        "x has shape (20, 64); the federation's records need (N, 1, 8, 8)"
    ]
    path = npz(tmp_path, x=np.full((20, 1, 8, 8), "a"), y=y)
    assert problems(ArrayRecords(path=path), digits) == ["x has dtype <U1, not numbers"]


def test_non_finite_values(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(20)
    x[2, 0, 3, 3], x[17, 0, 0, 0] = np.nan, np.inf
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y)), digits) == [
        "x[2] has non-finite values (NaN or infinity)",
        "x[17] has non-finite values (NaN or infinity)",
    ]


def test_labels_out_of_range_unknown_or_of_the_wrong_kind(
    tmp_path: Path, digits: PublicData
) -> None:
    x, y = records(20)
    y[1], y[5] = 10, -1
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y)), digits) == [
        "y[1] = 10 is outside [0, 10)",
        "y[5] = -1 is outside [0, 10)",
    ]
    names = np.array(["3"] * 19 + ["ten"])
    (found,) = problems(ArrayRecords(path=npz(tmp_path, x=x, y=names)), digits)
    assert found.startswith("y[19] = 'ten' is not a class name ('0', '1', '2',")
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y.astype(float))), digits) == [
        "y has dtype float64: labels are integers in [0, 10) or class names"
    ]
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y[:19])), digits) == [
        "y has shape (19,); it needs one label per record of x"
    ]


def test_bad_split_values(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(20)
    split = np.array(["train"] * 18 + ["val", "TEST"])
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y, split=split)), digits) == [
        "split[18] = 'val' is neither 'train' nor 'test'",
        "split[19] = 'TEST' is neither 'train' nor 'test'",
    ]


def test_too_few_records(tmp_path: Path, digits: PublicData) -> None:
    x, y = records(12)
    # 12 records, 20% (2) held out: 10 train, enough for 10, not for 11.
    ArrayRecords(path=npz(tmp_path, x=x, y=y), min_records=10).load(digits)
    assert problems(ArrayRecords(path=npz(tmp_path, x=x, y=y), min_records=11), digits) == [
        "10 training records; min-records is 11"
    ]


def test_bad_options(tmp_path: Path, digits: PublicData) -> None:
    provider = ArrayRecords(path=str(tmp_path), test_fraction=-0.1, min_local_test=-1, scale=0.0)
    assert problems(provider, digits) == [
        "test-fraction must be in [0, 1), got -0.1",
        "min-local-test must be >= 0, got -1",
        "scale must be > 0, got 0.0",
    ]


# --- image folders -----------------------------------------------------------------------


def test_image_folder_reads_classes_in_order_and_scales_pixels(
    tmp_path: Path, digits: PublicData
) -> None:
    three = np.arange(64).reshape(8, 8) * 4  # 0 .. 252
    seven = np.full((8, 8), 51)
    write_png(tmp_path / "3" / "a.png", three)
    write_png(tmp_path / "3" / "b.png", 255 - three)
    # An RGB file for a grayscale federation: converted, gray stays gray.
    write_png(tmp_path / "7" / "c.png", np.stack([seven] * 3, axis=-1))
    (tmp_path / "7" / ".DS_Store").write_bytes(b"ignored")
    provider = ArrayRecords(path=str(tmp_path), test_fraction=0.0, min_local_test=0, min_records=3)
    data = provider.load(digits)
    assert data.train.x.shape == (3, 1, 8, 8) and data.train.x.dtype == np.float32
    assert data.train.y.tolist() == [3, 3, 7]
    assert np.array_equal(data.train.x[0, 0], three.astype(np.float32) / np.float32(255))
    assert data.train.x[0, 0, 7, 7] == np.float32(252 / 255)
    assert data.train.x[1, 0, 0, 0] == 1.0
    assert np.all(data.train.x[2] == np.float32(0.2))
    scaled = ArrayRecords(
        path=str(tmp_path), test_fraction=0.0, min_local_test=0, min_records=3, scale=16.0
    ).load(digits)
    assert scaled.train.x[2, 0, 0, 0] == np.float32(51 / 16)


def test_rgb_images_for_a_three_channel_federation(tmp_path: Path) -> None:
    public = PublicData(
        name="rgb",
        classes=("cat", "dog"),
        transfer=make_transfer_set("rgb/transfer", np.zeros((4, 3, 2, 3), dtype=np.float32)),
        test=LabelledArrays(np.zeros((4, 3, 2, 3), dtype=np.float32), np.array([0, 1, 0, 1])),
    )
    pixels = np.zeros((2, 3, 3))  # height 2, width 3, RGB
    pixels[..., 0], pixels[..., 1], pixels[0, 2, 2] = 255, 102, 51
    write_png(tmp_path / "dog" / "rex.png", pixels)
    data = ArrayRecords(path=str(tmp_path), test_fraction=0.0, min_local_test=0, min_records=1)
    x = data.load(public).train.x
    assert x.shape == (1, 3, 2, 3)
    assert np.all(x[0, 0] == 1.0) and np.all(x[0, 1] == np.float32(0.4))
    assert x[0, 2].tolist() == [[0.0, 0.0, np.float32(0.2)], [0.0, 0.0, 0.0]]


def test_image_folder_problems(tmp_path: Path, digits: PublicData) -> None:
    write_png(tmp_path / "3" / "ok.png", np.zeros((8, 8)))
    write_png(tmp_path / "3" / "big.png", np.zeros((16, 12)))
    (tmp_path / "3" / "notes.png").write_text("not an image")
    write_png(tmp_path / "cat" / "tabby.png", np.zeros((8, 8)))
    (tmp_path / "labels.txt").write_text("3\n")
    found = problems(ArrayRecords(path=str(tmp_path)), digits)
    assert found[0] == f"{tmp_path / 'cat'}: 'cat' is not a class ('0', '1', '2', '3', '4', " + (
        "'5', '6', '7', '8', '9')"
    )
    assert found[1] == f"{tmp_path / 'labels.txt'} is not inside a class folder"
    assert found[2] == (
        f"{tmp_path / '3' / 'big.png'} is 12×16 pixels; the federation's images are 8×8 "
        "(resize it: nothing is resized here)"
    )
    assert found[3].startswith(f"{tmp_path / '3' / 'notes.png'} is not a readable image: ")
    assert len(found) == 4


def test_image_folder_needs_an_image_federation(tmp_path: Path) -> None:
    heart = load_public_data(PublicDataSpec(dataset="heart"))
    assert problems(ArrayRecords(path=str(tmp_path)), heart) == [
        f"{tmp_path} is an image folder but the federation's inputs have shape (15,), "
        "not (channels 1 or 3, height, width)"
    ]


def test_image_folder_with_too_few_images(tmp_path: Path, digits: PublicData) -> None:
    for i in range(5):
        write_png(tmp_path / "1" / f"{i}.png", np.full((8, 8), i))
    assert problems(ArrayRecords(path=str(tmp_path)), digits) == [
        "4 training records; min-records is 10"
    ]


def test_jpeg_images_are_read_too(tmp_path: Path, digits: PublicData) -> None:
    path = tmp_path / "5" / "scan.jpg"
    path.parent.mkdir()
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(path, format="JPEG")
    provider = ArrayRecords(path=str(tmp_path), test_fraction=0.0, min_local_test=0, min_records=1)
    data = provider.load(digits)
    assert data.train.y.tolist() == [5]
    # JPEG is lossy, but a flat gray block survives within a grey level or two.
    assert np.allclose(data.train.x, 128 / 255, atol=2 / 255)
