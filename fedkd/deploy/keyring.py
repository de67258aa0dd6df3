"""The coordinating site's register of hospitals: each node name with its public keys.

The node name is the identity everywhere (privacy registry, signatures, logs); Flower's
numeric node id is only a transport address mapped to it.  The register is one TOML file
with the public key files beside it::

    [nodes.cleveland]
    auth = "cleveland.auth.pub"     # SuperNode authentication (EC, OpenSSH)
    sign = "cleveland.sign.pub"     # reply signatures (Ed25519, OpenSSH)

Rotating a key keeps the name (and so its privacy budget); revoking removes the signing
key, so the node's replies are refused until it registers a new one.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


@dataclass(frozen=True)
class RegisteredNode:
    name: str
    auth: Path | None
    sign: Path | None


def read_register(path: Path) -> dict[str, RegisteredNode]:
    """Every registered node (an absent file is an empty register)."""
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    nodes = {}
    for name, entry in doc.get("nodes", {}).items():
        nodes[name] = RegisteredNode(
            name=name,
            auth=path.parent / entry["auth"] if entry.get("auth") else None,
            sign=path.parent / entry["sign"] if entry.get("sign") else None,
        )
    return nodes


def _write_register(path: Path, nodes: dict[str, RegisteredNode]) -> None:
    lines = ["# fedkd node register: names and public keys (see fedkd/deploy/keyring.py)", ""]
    for name in sorted(nodes):
        node = nodes[name]
        lines.append(f'[nodes."{name}"]')
        if node.auth is not None:
            lines.append(f'auth = "{node.auth.name}"')
        if node.sign is not None:
            lines.append(f'sign = "{node.sign.name}"')
        lines.append("")
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines))
    partial.replace(path)


def load_auth_key(path: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_ssh_public_key(path.read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{path}: SuperNode authentication needs an EC (NIST curve) key")
    return key


def load_sign_key(path: Path) -> ed25519.Ed25519PublicKey:
    key = serialization.load_ssh_public_key(path.read_bytes())
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{path}: reply signatures need an Ed25519 key")
    return key


def register(path: Path, name: str, *, auth: Path, sign: Path) -> RegisteredNode:
    """Register a new hospital under ``name`` with its two public keys (copied beside)."""
    nodes = read_register(path)
    load_auth_key(auth), load_sign_key(sign)  # refuse wrong key types before writing
    if name in nodes:
        held = nodes[name]
        same = [(held.auth, auth), (held.sign, sign)]
        if all(kept is not None and kept.read_bytes() == new.read_bytes() for kept, new in same):
            return held  # the same keys again (a re-run): nothing to change
        raise ValueError(f"{name!r} is registered already with other keys: rotate them instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    stored_auth = path.parent / f"{name}.auth.pub"
    stored_sign = path.parent / f"{name}.sign.pub"
    shutil.copyfile(auth, stored_auth)
    shutil.copyfile(sign, stored_sign)
    nodes[name] = RegisteredNode(name, stored_auth, stored_sign)
    _write_register(path, nodes)
    return nodes[name]


def rotate(path: Path, name: str, *, sign: Path | None = None, auth: Path | None = None) -> None:
    """Replace a node's key(s); the name, and so its budget and ledger head, stay."""
    nodes = read_register(path)
    if name not in nodes:
        raise ValueError(f"{name!r} is not registered")
    node = nodes[name]
    if sign is not None:
        load_sign_key(sign)
        shutil.copyfile(sign, path.parent / f"{name}.sign.pub")
        node = RegisteredNode(name, node.auth, path.parent / f"{name}.sign.pub")
    if auth is not None:
        load_auth_key(auth)
        shutil.copyfile(auth, path.parent / f"{name}.auth.pub")
        node = RegisteredNode(name, path.parent / f"{name}.auth.pub", node.sign)
    nodes[name] = node
    _write_register(path, nodes)


def revoke(path: Path, name: str) -> None:
    """Remove the node's signing key: its replies are refused from now on."""
    nodes = read_register(path)
    if name not in nodes:
        raise ValueError(f"{name!r} is not registered")
    stale = nodes[name].sign
    nodes[name] = RegisteredNode(name, nodes[name].auth, None)
    _write_register(path, nodes)
    if stale is not None and stale.exists():
        stale.unlink()


def signing_keys(path: Path) -> dict[str, ed25519.Ed25519PublicKey]:
    """Name → the Ed25519 key its replies must verify with."""
    return {
        name: load_sign_key(node.sign)
        for name, node in read_register(path).items()
        if node.sign is not None
    }
