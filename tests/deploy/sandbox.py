"""Run a command under a shipped systemd unit's process-level sandbox, as systemd would.

``systemd-analyze security`` scores what a unit asks for; whether the processes still
work under it is another question (``MemoryDenyWriteExecute`` can break a JIT, a
``SystemCallFilter`` a library's one odd call).  systemd is not the init process where
the tests run, so ``systemd-run -p …`` is not available; this applies, unprivileged and
from the unit file itself, what acts on the process:

- ``NoNewPrivileges`` and ``UMask``;
- ``MemoryDenyWriteExecute`` (the kernel's ``PR_SET_MDWE``, the same rule systemd's
  seccomp filter enforces: no mapping both writable and executable, ever);
- ``SystemCallFilter`` and ``SystemCallArchitectures`` (a seccomp filter of the sets
  ``systemd-analyze syscall-filter`` lists, with the calls systemd always permits; any
  other call kills the process, as systemd does);
- ``RestrictAddressFamilies`` (``socket()`` of another family fails with
  ``EAFNOSUPPORT``, as under systemd).

The mount, user and network namespace settings (``ProtectSystem``, ``PrivateTmp``,
``PrivateDevices``, ``PrivateUsers``, ``IPAddressDeny``…) are not applied here.

Usage: ``python -m tests.deploy.sandbox UNIT_FILE -- COMMAND...`` (it execs COMMAND).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

ALWAYS_PERMITTED = ("execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn")
"""What systemd adds to every allow list (systemd.exec(5), SystemCallFilter=)."""
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
PR_SET_NO_NEW_PRIVS = 38
FAMILIES = {name: int(getattr(socket, name)) for name in dir(socket) if name.startswith("AF_")}


def unit_settings(unit_file: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (repeated keys in order; continuation lines joined)."""
    settings: dict[str, list[str]] = {}
    for line in unit_file.read_text().replace("\\\n", " ").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@functools.cache
def syscall_set(name: str) -> frozenset[str]:
    """The calls of a systemd set (``@system-service``…), nested sets expanded."""
    listed = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    calls: set[str] = set()
    for line in listed:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        calls |= syscall_set(entry) if entry.startswith("@") else {entry}
    return frozenset(calls)


def allowed_syscalls(filters: list[str]) -> set[str]:
    """What the unit's ``SystemCallFilter=`` lines allow (the first line an allow list)."""
    allowed: set[str] = set(ALWAYS_PERMITTED)
    for line in filters:
        deny = line.startswith("~")
        names = line.removeprefix("~").split()
        calls = set().union(*(syscall_set(n) if n.startswith("@") else {n} for n in names))
        allowed = allowed - calls if deny else allowed | calls
    return allowed | set(ALWAYS_PERMITTED)


def apply(settings: dict[str, list[str]]) -> None:
    """Confine this process (and what it execs) as the unit's settings say."""
    import pyseccomp as seccomp

    libc = ctypes.CDLL(None, use_errno=True)
    if settings.get("UMask"):
        os.umask(int(settings["UMask"][-1], 8))
    if settings.get("NoNewPrivileges", ["no"])[-1] == "yes":
        _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    if settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        _prctl(libc, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)
    if not settings.get("SystemCallFilter"):
        return
    rules = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    families = set()
    for line in settings.get("RestrictAddressFamilies", []):
        families |= {FAMILIES[name] for name in line.split()}
    for call in sorted(allowed_syscalls(settings["SystemCallFilter"])):
        try:
            number = seccomp.resolve_syscall(seccomp.system_arch(), call)
        except (ValueError, OSError):
            continue
        if number < 0:
            continue  # not a call on this architecture (libseccomp's pseudo-number)
        if call == "socket" and families:
            for family in range(64):
                action = seccomp.ALLOW if family in families else seccomp.ERRNO(errno.EAFNOSUPPORT)
                rules.add_rule(action, call, seccomp.Arg(0, seccomp.EQ, family))
        else:
            rules.add_rule(seccomp.ALLOW, call)
    rules.load()


def _prctl(libc: ctypes.CDLL, option: int, value: int) -> None:
    if libc.prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}, {value}): {os.strerror(code)}")


def main(argv: list[str]) -> None:
    if "--" not in argv or argv.index("--") != 1:
        raise SystemExit("usage: python -m tests.deploy.sandbox UNIT_FILE -- COMMAND...")
    unit_file, command = Path(argv[0]), argv[2:]
    apply(unit_settings(unit_file))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
