"""The node register: names with their public keys; rotation keeps the name, revocation
removes the signing key, wrong key types never get in."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedkd.deploy.certs import make_node_keys
from fedkd.deploy.keyring import read_register, register, revoke, rotate, signing_keys


def _keys(folder: Path, name: str) -> tuple[Path, Path]:
    auth, sign = make_node_keys(folder, name)
    assert auth.public_key is not None and sign.public_key is not None
    return auth.public_key, sign.public_key


def test_register_rotate_revoke(tmp_path: Path) -> None:
    register_file = tmp_path / "site" / "nodes.toml"
    auth, sign = _keys(tmp_path / "cleveland", "cleveland")
    register(register_file, "cleveland", auth=auth, sign=sign)
    first = signing_keys(register_file)["cleveland"]
    with pytest.raises(ValueError, match="registered already"):
        register(register_file, "cleveland", auth=auth, sign=sign)

    _, new_sign = _keys(tmp_path / "cleveland-2026", "cleveland")
    rotate(register_file, "cleveland", sign=new_sign)
    rotated = signing_keys(register_file)["cleveland"]
    assert rotated.public_bytes_raw() != first.public_bytes_raw()
    assert set(read_register(register_file)) == {"cleveland"}  # same name, same budget

    revoke(register_file, "cleveland")
    assert "cleveland" not in signing_keys(register_file)
    assert read_register(register_file)["cleveland"].auth is not None


def test_wrong_key_types_are_refused(tmp_path: Path) -> None:
    auth, sign = _keys(tmp_path / "h", "hungary")
    with pytest.raises(ValueError, match="Ed25519"):
        register(tmp_path / "nodes.toml", "hungary", auth=auth, sign=auth)
    with pytest.raises(ValueError, match="EC"):
        register(tmp_path / "nodes.toml", "hungary", auth=sign, sign=sign)
    assert read_register(tmp_path / "nodes.toml") == {}


def test_the_cli_registers_and_revokes_by_name(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedkd.cli import app

    auth, sign = _keys(tmp_path / "keys", "va-long-beach")
    register_file = tmp_path / "site" / "nodes.toml"
    runner = CliRunner()
    args = ["--auth-pub", str(auth), "--sign-pub", str(sign), "--register", str(register_file)]
    assert runner.invoke(app, ["deploy", "register", "va-long-beach", *args]).exit_code == 0
    assert "va-long-beach" in signing_keys(register_file)
    twice = runner.invoke(app, ["deploy", "register", "va-long-beach", *args])
    assert twice.exit_code == 2 and "registered already" in twice.output
    revoked = runner.invoke(
        app, ["deploy", "revoke", "va-long-beach", "--register", str(register_file)]
    )
    assert revoked.exit_code == 0 and signing_keys(register_file) == {}
