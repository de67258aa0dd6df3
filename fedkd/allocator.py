"""Keep freed tensor memory in the process: glibc's malloc set for training's allocations.

Each training step allocates and frees tensors of a few megabytes.  By default glibc
serves an allocation above a threshold (at most 32 MiB, raised as blocks are freed) with
its own ``mmap`` and returns the free top of its heap to the kernel beyond 128 KiB, so a
step faults the same amount of fresh, zeroed pages in again.  Where a page fault is dear
— a virtual machine reporting freed pages to its host, as Firecracker and KVM with free
page reporting do — that weighs on a small model's step: measured on this project's
2-core VM (``make bench TABLE=allocator``, 15 paired processes), cnn-s trains 1.14×
[0.90–1.39] as fast with the settings below and 1.35× [1.21–1.47] with DP-SGD (whose
per-sample gradients are more, larger temporaries); mlp-m's speed is within the noise
(1.05×).  A step of cnn-s faulted about 10,000 pages in with glibc's defaults and next
to none with these on that VM (a property of the host, so no test asserts it;
tests/test_allocator.py checks the setting itself through glibc's ``mallinfo2``).
PyTorch's CPU performance guide recommends a caching allocator (jemalloc, tcmalloc) for
the same reason; ``mallopt`` gets the effect from the C library already loaded.

Set ``FEDKD_KEEP_FREED_MEMORY=0`` to leave the C library's defaults (a node that must give
memory back between rounds).  Elsewhere than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks below this come from the heap, where freed memory is reused (glibc's maximum)."""
TRIM_THRESHOLD = 256 * 1024 * 1024
"""Free memory at the heap's top kept for reuse before any is returned to the kernel."""

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the thresholds once per process; whether they are in effect.

    Peak memory does not grow (the heap keeps what it held at its peak instead of
    returning and re-faulting it); memory freed after the peak is returned only beyond
    :data:`TRIM_THRESHOLD`.
    """
    global _applied
    if _applied is None:
        _applied = os.environ.get("FEDKD_KEEP_FREED_MEMORY", "1") != "0" and _mallopt()
    return _applied


def _mallopt() -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
