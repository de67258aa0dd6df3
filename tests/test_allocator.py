"""The allocator setting is applied, idempotent, and honoured when switched off.

What it changes is read from glibc itself (``mallinfo2``), not from the host's page-fault
counts or timings (those are ``make bench TABLE=allocator``): with the setting, a 16 MiB
block comes from the heap (no ``mmap``'d chunk) and stays there when freed (the heap's
free bytes keep it); with glibc's defaults it is mapped on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ctypes, ctypes.util, json
from fedkd.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_freed_memory()
again = keep_freed_memory()
block = 16 * 1024 * 1024
before = libc.mallinfo2()
pointer = libc.malloc(block)
during = libc.mallinfo2()
libc.free(pointer)
after = libc.mallinfo2()
print(json.dumps({
    "applied": applied, "again": again,
    "mapped": during.hblks - before.hblks,
    "kept_free": after.fordblks >= block,
}))
"""


def _probe(keep: str) -> dict[str, int | bool]:
    env = {**os.environ, "FEDKD_KEEP_FREED_MEMORY": keep, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, int | bool] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_setting_is_applied_once_and_serves_blocks_from_the_heap() -> None:
    kept = _probe("1")
    assert kept["applied"] is True and kept["again"] is True  # applied, idempotent
    assert kept["mapped"] == 0  # below the 32 MiB threshold: from the heap
    assert kept["kept_free"] is True  # freed, it stays in the heap for the next step


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_switched_off_it_leaves_glibcs_defaults() -> None:
    defaults = _probe("0")
    assert defaults["applied"] is False and defaults["again"] is False
    assert defaults["mapped"] == 1  # glibc maps a block this size on its own
    assert defaults["kept_free"] is False
