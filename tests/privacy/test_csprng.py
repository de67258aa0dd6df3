"""Every value inside the ε accounting comes from the ChaCha20 CSPRNG, and its noise is right.

* Known answers: the stream reproduces RFC 8439's ChaCha20 keystream, and the noise is
  what an independent Box–Muller + sum-of-four-normals reference computes from those bytes.
* No seeding path: with every seeding function of torch, numpy and Python made to raise,
  a DP-SGD step and a swing release still complete, and neither global generator moves.
* The law: one DP step on data with zero gradients moves the weights by exactly the noise
  over the batch, which passes a Kolmogorov–Smirnov test against N(0, (σC/B)²) at two σ
  over 2·10⁶ draws each, and the same test rejects 1.01σ.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from fedkd.distill.settings import OptimiserConfig
from fedkd.privacy import entropy
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import train_private
from fedkd.privacy.secure_noise import gaussian_noise, laplace_noise, standard_normal
from fedkd.privacy.swing import SwingConfig, swing_release

# RFC 8439 §2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, block counter 1.
RFC_KEY = bytes(range(32))
RFC_NONCE = bytes.fromhex("000000090000004a00000000")
RFC_BLOCK = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
)
# RFC 8439 Appendix A.1, test vector #1: all-zero key and nonce, block counter 0.
A1_BLOCK = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)


def rfc_stream() -> ChaCha20Stream:
    return ChaCha20Stream(RFC_KEY, nonce=RFC_NONCE, counter=1)


def test_the_stream_is_rfc_8439_chacha20() -> None:
    assert rfc_stream().random_bytes(64) == RFC_BLOCK
    zero = ChaCha20Stream(bytes(32))
    assert zero.random_bytes(20) + zero.random_bytes(44) == A1_BLOCK  # one stream, no gaps


def _reference_uniforms(block: bytes) -> list[float]:
    """u = (⌊w / 2¹²⌋ + 2⁵¹ + ½)·2⁻⁵², w each 8 bytes as a signed little-endian integer."""
    return [((w >> 12) + 2**51 + 0.5) * 2.0**-52 for w in struct.unpack("<8q", block)]


def test_uniforms_and_noise_reproduce_the_reference_from_the_keystream() -> None:
    u = _reference_uniforms(RFC_BLOCK)
    np.testing.assert_array_equal(rfc_stream().uniform(8), u)
    # Box–Muller: radii from the first half of the uniforms, angles from the second.
    radii = [math.sqrt(-2.0 * math.log(v)) for v in u[:4]]
    angles = [2 * math.pi * v for v in u[4:]]
    normals = [r * math.cos(a) for r, a in zip(radii, angles, strict=True)]
    normals += [r * math.sin(a) for r, a in zip(radii, angles, strict=True)]
    np.testing.assert_allclose(standard_normal(rfc_stream(), 8), normals, rtol=1e-14)
    # Two noise values from 4 × 2 uniforms: radii rows 0–1, angles rows 2–3, each value
    # the four normals of its column's two pairs, times σ/2.
    sigma = 1.7
    want = []
    for j in range(2):
        pairs = [(u[j], u[4 + j]), (u[2 + j], u[6 + j])]
        four = sum(math.sqrt(-2.0 * math.log(r)) * (math.cos(2 * math.pi * a)
                   + math.sin(2 * math.pi * a)) for r, a in pairs)  # fmt: skip
        want.append(sigma * four / 2)
    np.testing.assert_allclose(gaussian_noise(rfc_stream(), (2,), sigma), want, rtol=1e-14)
    v = u[0] - 0.5
    laplace = -0.3 * math.copysign(1.0, v) * math.log1p(-2 * abs(v))
    np.testing.assert_allclose(laplace_noise(rfc_stream(), (1,), 0.3), [laplace], rtol=1e-14)


def test_a_fresh_stream_takes_256_bits_from_the_os(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def recording(count: int) -> bytes:
        asked.append(count)
        return RFC_KEY

    monkeypatch.setattr(entropy, "fresh_bytes", recording)
    fresh = ChaCha20Stream.fresh()
    assert asked == [32]
    assert fresh.random_bytes(64) == ChaCha20Stream(RFC_KEY).random_bytes(64)
    with pytest.raises(ValueError, match="32 bytes"):
        ChaCha20Stream(bytes(16))


class _UnseedableGenerator(torch.Generator):
    def manual_seed(self, seed: Any) -> torch.Generator:
        raise AssertionError("torch.Generator.manual_seed called inside a privacy mechanism")


def _refuse(name: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} called inside a privacy mechanism")

    return refused


def test_dp_step_and_swing_release_run_with_every_seeding_function_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each mode trains twice from one model and one stream key, with torch's and numpy's
    global generators in different states: equal results show no draw came from them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    logits, likelihood = rng.normal(size=(30, 3)), rng.uniform(size=30)
    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3)).state_dict()
    global_states = []
    for _ in range(2):
        torch.rand(7), np.random.rand(7)
        global_states.append((torch.get_rng_state(), np.random.get_state()))
    default_rng = np.random.default_rng

    def unseeded_only(seed: Any = None) -> np.random.Generator:
        if seed is not None:
            raise AssertionError("np.random.default_rng seeded inside a privacy mechanism")
        return default_rng()

    monkeypatch.setattr(torch, "Generator", _UnseedableGenerator)
    for module, name in ((torch, "manual_seed"), (torch.random, "manual_seed"),
                         (torch, "seed"), (np.random, "seed"), (random, "seed")):  # fmt: skip
        monkeypatch.setattr(module, name, _refuse(f"{module.__name__}.{name}"))
    monkeypatch.setattr(np.random, "default_rng", unseeded_only)
    for mode in ("output-grads", "hooks", "ghost", "ew", "functorch"):
        trained = []
        for torch_state, numpy_state in global_states:
            torch.set_rng_state(torch_state)
            np.random.set_state(numpy_state)
            model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
            model.load_state_dict(start)
            result = train_private(
                model, x, y, epochs=1, cfg=OptimiserConfig(batch_size=16),
                noise_multiplier=1.0, max_grad_norm=1.0, grad_sample_mode=mode,
                randomness=ChaCha20Stream.reproducible(mode),
            )  # fmt: skip
            assert result.spent.steps == 4, mode
            trained.append(model.state_dict())
        for name, value in trained[0].items():
            assert torch.equal(value, trained[1][name]), (mode, name)
            assert not torch.equal(value, start[name]), (mode, name)
    for law in ("gaussian", "laplace"):
        released = [
            swing_release(
                logits, likelihood, SwingConfig(noise=law, noise_scale=0.05),
                randomness=ChaCha20Stream.reproducible(law),
            )
            for _ in range(2)
        ]  # fmt: skip
        np.testing.assert_array_equal(released[0], released[1])
        np.testing.assert_allclose(released[0].sum(axis=1), 1.0, atol=1e-5)


def _one_step_noise(sigma: float, clip: float, batch: int, draws: int) -> tuple[np.ndarray, float]:
    """Weights moved by one DP-SGD step whose per-sample gradients are all zero (inputs of
    zero, no bias): with lr = 1 the move is −(noise)/B.  Returns it and the σ accounted."""
    width = math.isqrt(draws) + 1
    model = nn.Sequential(nn.Linear(width, width, bias=False))
    start = model[0].weight.detach().clone()
    x = np.zeros((batch, width), dtype=np.float32)
    y = np.zeros(batch, dtype=np.int64)
    result = train_private(
        model, x, y, epochs=1, cfg=OptimiserConfig(batch_size=batch, lr=1.0, momentum=0.0,
                                                   weight_decay=0.0),
        noise_multiplier=sigma, max_grad_norm=clip,
        randomness=ChaCha20Stream.reproducible(f"ks/{sigma}"),  # a fixed key: no flaky test
    )  # fmt: skip
    assert result.spent.steps == 1 and result.spent.sample_rate == 1.0
    moved = (start - model[0].weight.detach()).numpy().ravel().astype(np.float64)
    return moved, result.spent.noise_multiplier


@pytest.mark.parametrize("sigma", [0.7, 2.3])
def test_one_step_noise_is_gaussian_with_std_sigma_c_over_b(sigma: float) -> None:
    clip, batch = 1.5, 8
    moved, accounted = _one_step_noise(sigma, clip, batch, draws=2_000_000)
    assert accounted == sigma and moved.size >= 2_000_000
    std = accounted * clip / batch
    right = stats.kstest(moved, "norm", args=(0.0, std)).pvalue
    wrong = stats.kstest(moved, "norm", args=(0.0, 1.01 * std)).pvalue
    print(f"σ = {sigma}: KS p = {right:.3g} at σC/B, {wrong:.3g} at 1.01σC/B")
    assert right > 1e-3 and wrong < 1e-6
