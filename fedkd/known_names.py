"""One way to refuse a name that is not known: a strategy, model, partitioner, provider,
scorer, accountant, device or config key.  The message names the key, the value, the
nearest known name ("did you mean …?") and, when there are few, every known one.

Importable without torch, numpy or Flower: configs are checked with it before anything
starts.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable
from pathlib import Path

LISTED_AT_MOST = 12
"""Known names listed in a message when there are at most this many (else only the
nearest: a list of sixty keys hides the one that was meant)."""

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device names accepted beside ``cuda:<index>``: ``auto`` is CUDA when there is one."""
_CUDA_INDEX = re.compile(r"cuda:(0|[1-9][0-9]{0,3})")


def did_you_mean(value: str, known: Iterable[str]) -> str | None:
    """The known name nearest ``value``, if one is near enough to be a slip."""
    names = sorted(set(known))
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    if not close:
        # A slip in case or separators ("Dirichlet", "num_clients") is still a near miss.
        folded = {_fold(name): name for name in names}
        if _fold(value) in folded:
            return folded[_fold(value)]
    return close[0] if close else None


def unknown_name(what: str, value: object, known: Iterable[str], *, hint: str = "") -> str:
    """``unknown partitioner 'zipf'; known: dirichlet, iid, natural, pathological`` or
    ``unknown config key 'num-clientz'; did you mean 'num-clients'?``.

    ``hint`` is said instead of the list when there are too many known names to list.
    """
    names = sorted(set(known))
    text = f"unknown {what} {value!r}"
    near = did_you_mean(value, names) if isinstance(value, str) else None
    if near is not None:
        text += f"; did you mean {near!r}?"
    if len(names) <= LISTED_AT_MOST:
        text += f" (known: {', '.join(names)})" if near else f"; known: {', '.join(names)}"
    elif near is None and hint:
        text += f" ({hint})"
    return text


def check_name(what: str, value: object, known: Iterable[str], *, hint: str = "") -> str:
    """``value`` if it is one of ``known``; else ``ValueError`` with :func:`unknown_name`."""
    names = set(known)
    if not isinstance(value, str) or value not in names:
        raise ValueError(unknown_name(what, value, names, hint=hint))
    return value


def check_device(key: str, value: str) -> str:
    """A device string torch would accept: ``auto``, ``cpu``, ``cuda``, ``cuda:<index>``,
    ``mps``.  Only the spelling is checked here (no torch); whether the machine has
    that device is checked where the nodes run."""
    if value in DEVICES or _CUDA_INDEX.fullmatch(value):
        return value
    text = f"unknown {key} {value!r}"
    near = _DEVICE_SLIPS.get(value.lower())
    if near is None and (index := re.fullmatch(r"cuda[ _-]?([0-9]+)", value.lower())):
        near = f"cuda:{int(index[1])}"
    if near is None and value.lower() in DEVICES:
        near = value.lower()
    listing = f"{', '.join(DEVICES[:3])}, cuda:<index>, {DEVICES[3]}"
    if near is not None:
        return _raise(f"{text}; did you mean {near!r}? (known: {listing})")
    return _raise(f"{text}; known: {listing}")


_DEVICE_SLIPS = {"gpu": "cuda", "cuda:": "cuda", "metal": "mps", "apple": "mps"}
"""Device names people write that torch spells otherwise (no edit-distance guess here: a
three-letter name is two letters from every other, so "tpu" would be offered "cpu")."""


def _raise(message: str) -> str:
    raise ValueError(message)


def _fold(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def registered_names(folder: Path, register: str) -> tuple[str, ...]:
    """The names ``folder``'s modules register, read from their source, never imported
    (importing them would import torch): the first argument of every ``register("…")``
    call, and the ``name = "…"`` of every class decorated ``@register``.  In file order,
    then source order; a test holds each list equal to its registry's."""
    names: list[str] = []
    for source in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and _calls(node.func, register) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.append(first.value)
            elif isinstance(node, ast.ClassDef) and any(
                _calls(d, register) for d in node.decorator_list
            ):
                names += [
                    item.value.value
                    for item in node.body
                    if isinstance(item, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "name" for t in item.targets)
                    and isinstance(item.value, ast.Constant)
                    and isinstance(item.value.value, str)
                ]
    return tuple(names)


def _calls(node: ast.expr, register: str) -> bool:
    return isinstance(node, ast.Name) and node.id == register
