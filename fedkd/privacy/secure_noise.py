"""Gaussian and Laplace noise from the CSPRNG, with a floating-point defence for DP-SGD.

Normals come from the Box–Muller transform on pairs of the stream's uniforms (float64)::

    z₀ = √(−2 ln u₁) · cos(2π u₂),   z₁ = √(−2 ln u₁) · sin(2π u₂)

A CSPRNG alone does not stop floating-point attacks on the Gaussian mechanism: the set of
doubles a sampler can output around a value depends on the value, which can reveal it
(Jin, McMurtry, Rubinstein, Ohrimenko, "Are We There Yet? Timing and Floating-Point
Attacks on Differential Privacy Systems", IEEE S&P 2022, arXiv:2112.05307, shown on
Opacus).  :func:`gaussian_noise` keeps the defence of Holohan & Braghin ("Secure Random
Sampling in Differential Privacy", ESORICS 2021, arXiv:2107.10138, §5.1) with n = 2, as
Opacus's ``secure_mode`` does: the sum of 2n = 4 independent normals, scaled by 1/√(2n),

    η = σ · (z₁ + z₂ + z₃ + z₄) / 2   ~ N(0, σ²)

which makes recovering the value a search of about 2¹⁵⁹ candidates instead of 2⁵³.
"""

from __future__ import annotations

import math

import numpy as np

from fedkd.privacy.csprng import ChaCha20Stream

SUMMED_NORMALS = 4
"""2n normals per draw (Holohan & Braghin's n = 2)."""


def standard_normal(stream: ChaCha20Stream, count: int) -> np.ndarray:
    """``count`` float64 N(0, 1) draws by Box–Muller on the stream's uniforms."""
    pairs = (count + 1) // 2
    u = stream.uniform(2 * pairs)
    radius = np.sqrt(-2.0 * np.log(u[0::2]))
    angle = 2.0 * math.pi * u[1::2]
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = radius * np.cos(angle)
    out[1::2] = radius * np.sin(angle)
    return out[:count]


def gaussian_noise(stream: ChaCha20Stream, shape: tuple[int, ...], std: float) -> np.ndarray:
    """float64 N(0, std²) noise of ``shape``, as a sum of four normals (see the module)."""
    count = math.prod(shape)
    summed = standard_normal(stream, SUMMED_NORMALS * count).reshape(SUMMED_NORMALS, count)
    noise: np.ndarray = (summed.sum(axis=0) * (std / math.sqrt(SUMMED_NORMALS))).reshape(shape)
    return noise


def laplace_noise(stream: ChaCha20Stream, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """float64 Laplace(0, scale) noise by the inverse CDF, ``−b·sgn(v)·ln(1 − 2|v|)``,
    ``v = u − ½`` (swing noise only, which claims no ε)."""
    v = stream.uniform(math.prod(shape)) - 0.5
    noise: np.ndarray = (-scale * np.sign(v) * np.log1p(-2.0 * np.abs(v))).reshape(shape)
    return noise
