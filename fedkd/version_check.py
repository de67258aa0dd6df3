"""Which fedkd versions can talk to each other: the same major and minor version (in 0.x,
a minor release may change the protocol).  Both sides say their version in every
message; each refuses one it does not support, with a message that says both."""

from __future__ import annotations

__version__ = "0.1.0"
"""This release (``pyproject.toml``'s version; a test holds them equal).  It lives here,
not in the package root, so the wire and the node read it without importing upward."""


def _series(version: str) -> tuple[str, str] | None:
    parts = version.strip().split(".")
    return (parts[0], parts[1]) if len(parts) >= 2 and parts[0] and parts[1] else None


def incompatibility(theirs: str, *, who: str, ours: str = __version__) -> str:
    """Empty if ``theirs`` can talk to ``ours``; else one line naming both versions."""
    mine = _series(ours)
    if not theirs:
        return f"the {who} does not state its fedkd version; this side runs {ours}"
    if _series(theirs) != mine:
        return (
            f"the {who} runs fedkd {theirs}; this side runs {ours} and supports "
            f"{'.'.join(mine or ('?', '?'))}.x only: upgrade one side"
        )
    return ""
