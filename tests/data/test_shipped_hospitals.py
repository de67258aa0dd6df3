"""The example hospitals shipped in simulations/heart-hospitals are what the command writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedkd.data.heart_export import export_heart_hospitals
from fedkd.data.public import load_public_bundle

SHIPPED = Path(__file__).resolve().parents[2] / "simulations" / "heart-hospitals"


def test_the_shipped_example_matches_a_fresh_export(tmp_path: Path) -> None:
    fresh = export_heart_hospitals(tmp_path, seed=0)
    text_files = [fresh.schema, fresh.simulation]
    text_files += [p for h in fresh.hospitals for p in (h.csv, h.node_config)]
    for path in text_files:
        assert (SHIPPED / path.name).read_text() == path.read_text(), path.name
    shipped, made = load_public_bundle(SHIPPED / "public.npz"), load_public_bundle(fresh.public)
    assert shipped.transfer.digest == made.transfer.digest
    assert shipped.test_digest == made.test_digest and shipped.classes == made.classes
    np.testing.assert_array_equal(shipped.test.y, made.test.y)
