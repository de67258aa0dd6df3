"""Poisson sampling for DP-SGD with its masks drawn from the CSPRNG.

Each step includes every record independently with probability q (the amplification by
subsampling the accountants assume).  Opacus's sampler draws its masks with
``torch.rand`` from a ``torch.Generator``; this one compares the stream's 53-bit uniforms
with q instead, so no mask passes through a 32-bit seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from fedkd.privacy.csprng import ChaCha20Stream


class CsprngPoissonSampler(UniformWithReplacementSampler):  # type: ignore[misc]
    """``steps`` batches of record indices, each record in each with probability q."""

    def __init__(
        self, *, num_samples: int, sample_rate: float, steps: int, stream: ChaCha20Stream
    ) -> None:
        super().__init__(num_samples=num_samples, sample_rate=sample_rate, steps=steps)
        self.stream = stream

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = self.stream.uniform(self.num_samples) < self.sample_rate
            yield np.flatnonzero(mask).tolist()
