"""Canaries collide with nothing public or anyone else's, and the wrapper provider inserts
exactly the inserted ones, repeated, leaving the local test set alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedkd.audit.canaries import KINDS, CanarySet, draw_canaries, row_digests
from fedkd.config import parse_run_config
from fedkd.data.providers import make_provider
from fedkd.data.public import load_public_data
from server.releases import ReleaseLog, load_releases
from tests.node_harness import federation

CFG = parse_run_config({"dataset": "digits", "num-clients": 4, "partitioner": "iid"})


def _draw(**changes: object) -> CanarySet:
    data = federation(CFG)
    target = data.clients[0].train
    settings: dict[str, object] = {
        "kinds": KINDS, "candidates": 200, "references": 1000, "repeats": 3,
        "num_classes": 10, "base_x": target.x, "base_y": target.y, "seed": 5, **changes,
    }  # fmt: skip
    return draw_canaries(**settings)  # type: ignore[arg-type]


def test_canaries_are_never_anchors_test_records_or_anyone_elses_data() -> None:
    data = federation(CFG)
    canaries = row_digests(_draw().x)
    assert len(canaries) == 2 * 1200  # every canary is a distinct input
    assert not canaries & row_digests(data.transfer.x)
    assert not canaries & row_digests(data.global_test.x)
    for client in data.clients:
        assert not canaries & row_digests(client.train.x)
        assert not canaries & row_digests(client.test.x)


def test_the_secret_is_the_input_and_a_wrong_label() -> None:
    drawn = _draw()
    data = federation(CFG)
    mislabelled = drawn.of_kind("mislabelled")
    # Every mislabelled canary's nearest training record has another label.
    base = data.clients[0].train
    flat = base.x.reshape(len(base.x), -1)
    for i in np.flatnonzero(mislabelled)[:50]:
        nearest = np.argmin(((flat - drawn.x[i].reshape(-1)) ** 2).sum(axis=1))
        assert base.y[nearest] != drawn.y[i]
    # Half the candidates come up IN, no reference does; 1,000 references per kind.
    for kind in KINDS:
        of_kind = drawn.of_kind(kind)
        assert (of_kind & ~drawn.candidate).sum() == 1000
        assert 0.4 < drawn.coin[of_kind & drawn.candidate].mean() < 0.6
    assert not (drawn.coin & ~drawn.candidate).any()


def test_the_negative_control_draws_the_same_canaries_and_inserts_none() -> None:
    normal, control = _draw(), _draw(insert=False)
    np.testing.assert_array_equal(normal.x, control.x)
    np.testing.assert_array_equal(normal.coin, control.coin)
    assert normal.inserted.sum() > 0 and control.inserted.sum() == 0


def test_the_wrapper_inserts_the_inserted_canaries_repeated(tmp_path: Path) -> None:
    drawn = _draw()
    path = drawn.save(tmp_path / "canaries.npz")
    public = load_public_data(CFG.public_spec)
    options = {
        "dataset": "digits", "num-partitions": 4, "partition-id": 0, "partitioner": "iid",
        "transfer-size": CFG.transfer_size,
    }  # fmt: skip
    plain = make_provider("partition", options).load(public)
    wrapped = make_provider(
        "with-canaries", {"canaries": str(path), "base": "partition", **options}
    ).load(public)
    assert len(wrapped.train.x) == len(plain.train.x) + 3 * drawn.inserted.sum()
    np.testing.assert_array_equal(wrapped.train.x[: len(plain.train.x)], plain.train.x)
    np.testing.assert_array_equal(wrapped.test.x, plain.test.x)
    inserted = row_digests(wrapped.train.x[len(plain.train.x) :])
    assert inserted == row_digests(drawn.x[drawn.inserted])
    assert CanarySet.load(path).coin.tolist() == drawn.coin.tolist()


def test_a_missing_canary_file_is_a_data_problem_the_node_reports(tmp_path: Path) -> None:
    from fedkd.data.providers import DataValidationError

    public = load_public_data(CFG.public_spec)
    with pytest.raises(DataValidationError, match="does not exist"):
        make_provider(
            "with-canaries", {"canaries": str(tmp_path / "none.npz"), "dataset": "digits"}
        ).load(public)


def test_the_release_log_round_trips(tmp_path: Path) -> None:
    log = ReleaseLog()
    for round_ in (2, 1):
        log.record("node-0", round_, np.array([3, 1]), np.full((2, 10), 0.1, np.float32))
    log.save(tmp_path)
    loaded = load_releases(tmp_path / "node-0.npz")
    assert [r.round for r in loaded] == [1, 2]
    np.testing.assert_array_equal(loaded[0].anchors, [3, 1])
    assert loaded[1].soft_labels.shape == (2, 10)


@pytest.mark.parametrize("records", [700, 1126, 6569, 20_000])
def test_canaries_sized_to_the_share_stay_within_it(records: int) -> None:
    from fedkd.audit.canaries import candidates_for_share

    per_kind = candidates_for_share(records, share=0.1, kinds=2, repeats=1)
    rng = np.random.default_rng(records)
    inserted = rng.binomial(2 * per_kind, 0.5, size=20_000)
    assert per_kind >= 10
    assert np.mean(inserted > 0.1 * records) < 0.005
    # Not needlessly small: the expected count uses most of the share.
    assert 2 * per_kind / 2 > 0.07 * records or per_kind == 1000
