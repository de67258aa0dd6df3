"""The CSPRNG every privacy mechanism draws from: the ChaCha20 keystream (RFC 8439).

A DP guarantee assumes the mechanism's randomness is unpredictable to the adversary.  A
PRNG seeded through ``torch.Generator.manual_seed`` keeps 32 bits of its seed on the CPU,
so a server could search every seed of a release; numpy's and Python's generators are
not designed to resist prediction either.  :class:`ChaCha20Stream` is keyed with 256
bits (fresh from the OS by default, :func:`fedkd.privacy.entropy.fresh_bytes`) and
reads the cipher's keystream through the ``cryptography`` package (OpenSSL's
implementation): nothing in any configuration determines it, and no part of it passes
through a seed.

Uniforms read each 8 bytes of the keystream as a little-endian signed 64-bit integer w
and keep its top 52 bits, ``k = ⌊w / 2¹²⌋ + 2⁵¹`` (uniform on [0, 2⁵²)), offset by half a
step: ``u = (k + ½)·2⁻⁵² ∈ (0, 1)``, exact in float64, so ``log u`` is always finite.
They are float64 torch tensors (vectorised on every core; a DP step draws millions).
Gaussian and Laplace draws built on them live in :mod:`fedkd.privacy.secure_noise`.
"""

from __future__ import annotations

import hashlib

import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fedkd.privacy import entropy

KEY_BYTES = 32
"""ChaCha20's key: 256 bits, at least the 128 the design card asks for."""
NONCE_BYTES = 12
_UNIT = 2.0**-52
_OFFSET = 2.0**51 + 0.5


class ChaCha20Stream:
    """An endless, cryptographically secure stream of random bits.

    Parameters
    ----------
    key
        32 secret bytes.  :meth:`fresh` draws them from the OS; :meth:`reproducible`
        derives them from a seed, for simulations flagged as replayable only.
    nonce, counter
        Where in the keystream to start (RFC 8439's 96-bit nonce and 32-bit block
        counter); a fresh key makes any value safe, so they exist for the known-answer
        tests.
    """

    def __init__(self, key: bytes, *, nonce: bytes = bytes(NONCE_BYTES), counter: int = 0):
        if len(key) != KEY_BYTES:
            raise ValueError(f"a ChaCha20 key has {KEY_BYTES} bytes, got {len(key)}")
        if len(nonce) != NONCE_BYTES or not 0 <= counter < 2**32:
            raise ValueError("the nonce has 12 bytes and the block counter 32 bits")
        # cryptography takes RFC 8439's counter and nonce as one 16-byte value.
        full_nonce = counter.to_bytes(4, "little") + nonce
        self._cipher = Cipher(algorithms.ChaCha20(key, full_nonce), mode=None).encryptor()
        self._zeros, self._buffer = b"", torch.empty(0, dtype=torch.uint8)

    @classmethod
    def fresh(cls) -> ChaCha20Stream:
        """A stream keyed with 256 fresh bits from the OS (what every real node uses)."""
        return cls(entropy.fresh_bytes(KEY_BYTES))

    @classmethod
    def reproducible(cls, seed: str) -> ChaCha20Stream:
        """A stream anyone who knows ``seed`` can replay (flagged simulations only)."""
        return cls(hashlib.sha256(f"fedkd reproducible stream/{seed}".encode()).digest())

    def random_bytes(self, count: int) -> bytes:
        """The next ``count`` bytes of the keystream."""
        return self._cipher.update(bytes(count))

    def uniform(self, count: int) -> torch.Tensor:
        """``count`` float64 uniforms in the open interval (0, 1), 52 bits each."""
        if count == 0:
            return torch.empty(0, dtype=torch.float64)
        size = 8 * count
        if len(self._zeros) < size:  # kept: a DP step asks for the same size every time
            self._zeros = bytes(size)
            # torch's allocator aligns it, which the vectorised shift below needs to be fast.
            self._buffer = torch.empty(size + 63, dtype=torch.uint8)
        # Straight into the buffer, without a copy of the keystream; the words are shifted
        # into a new tensor, so the buffer is free again on return.
        self._cipher.update_into(memoryview(self._zeros)[:size], self._buffer.numpy().data)
        words = self._buffer[:size].view(torch.int64)
        return (words >> 12).to(torch.float64).add_(_OFFSET).mul_(_UNIT)
