"""Gaussian and Laplace noise from the CSPRNG, with a floating-point defence for DP-SGD.

Normals come from the Box–Muller transform on the stream's uniforms (float64): for
``count`` normals, ``k = ⌈count/2⌉`` radii from the first k uniforms and k angles from the
next k, and the normals are ``r·cos θ`` for all k followed by ``r·sin θ``::

    r_i = √(−2 ln u_i),   θ_i = 2π u_{k+i},   z = (r_1 cos θ_1, …, r_k cos θ_k, r_1 sin θ_1, …)

A CSPRNG alone does not stop floating-point attacks on the Gaussian mechanism: the set of
doubles a sampler can output around a value depends on the value, which can reveal it
(Jin, McMurtry, Rubinstein, Ohrimenko, "Are We There Yet? Timing and Floating-Point
Attacks on Differential Privacy Systems", IEEE S&P 2022, arXiv:2112.05307, shown on
Opacus).  :func:`gaussian_noise` keeps the defence of Holohan & Braghin ("Secure Random
Sampling in Differential Privacy", ESORICS 2021, arXiv:2107.10138, §5.1) with n = 2, as
Opacus's ``secure_mode`` does: the sum of 2n = 4 independent normals, scaled by 1/√(2n),
which makes recovering the value a search of about 2¹⁵⁹ candidates instead of 2⁵³.  The
four are both normals of two Box–Muller pairs (independent by construction): for m
values, 4m uniforms give radii r, r′ (the first two quarters) and angles θ, θ′ (the
last two), and

    η = σ · (r (cos θ + sin θ) + r′ (cos θ′ + sin θ′)) / 2   ~ N(0, σ²)
"""

from __future__ import annotations

import math

import torch

from fedkd.privacy.csprng import ChaCha20Stream

SUMMED_NORMALS = 4
"""2n normals per draw (Holohan & Braghin's n = 2)."""


def standard_normal(stream: ChaCha20Stream, count: int) -> torch.Tensor:
    """``count`` float64 N(0, 1) draws by Box–Muller on the stream's uniforms."""
    pairs = (count + 1) // 2
    u = stream.uniform(2 * pairs)
    radius = torch.log(u[:pairs]).mul_(-2.0).sqrt_()
    angle = u[pairs:].mul(2.0 * math.pi)
    return torch.cat((radius * torch.cos(angle), radius * torch.sin(angle)))[:count]


def gaussian_noise(stream: ChaCha20Stream, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """float64 N(0, std²) noise of ``shape``, each value a sum of four normals (see above)."""
    m = math.prod(shape)
    u = stream.uniform(SUMMED_NORMALS * m).view(SUMMED_NORMALS, m)
    radius = torch.log(u[:2]).mul_(-2.0).sqrt_()
    angle = u[2:].mul(2.0 * math.pi)
    paired = radius.mul_(torch.cos(angle).add_(torch.sin(angle)))
    return (paired[0] + paired[1]).mul_(std / math.sqrt(SUMMED_NORMALS)).view(shape)


def noise_like(
    stream: ChaCha20Stream, references: list[torch.Tensor], std: float
) -> list[torch.Tensor]:
    """N(0, std²) noise shaped, typed and placed like each of ``references``, drawn for all
    of them at once from ``stream`` (float64, :func:`gaussian_noise`)."""
    sizes = [r.numel() for r in references]
    noise = gaussian_noise(stream, (sum(sizes),), std)
    pieces = torch.split(noise, sizes)
    return [
        piece.to(device=r.device, dtype=r.dtype).view_as(r)
        for r, piece in zip(references, pieces, strict=True)
    ]


def laplace_noise(stream: ChaCha20Stream, shape: tuple[int, ...], scale: float) -> torch.Tensor:
    """float64 Laplace(0, scale) noise by the inverse CDF, ``−b·sgn(v)·ln(1 − 2|v|)``,
    ``v = u − ½`` (swing noise only, which claims no ε)."""
    v = stream.uniform(math.prod(shape)) - 0.5
    return (-scale * torch.sign(v) * torch.log1p(-2.0 * v.abs())).view(shape)
