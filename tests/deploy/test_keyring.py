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
    assert register(register_file, "cleveland", auth=auth, sign=sign).name == "cleveland"  # again
    other_auth, other_sign = _keys(tmp_path / "impostor", "cleveland")
    with pytest.raises(ValueError, match="registered already with other keys"):
        register(register_file, "cleveland", auth=other_auth, sign=other_sign)
    assert signing_keys(register_file)["cleveland"] == first

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
    assert twice.exit_code == 0, twice.output  # a re-run with the same keys changes nothing
    other_auth, other_sign = _keys(tmp_path / "other", "va-long-beach")
    other = ["--auth-pub", str(other_auth), "--sign-pub", str(other_sign)]
    clash = runner.invoke(
        app, ["deploy", "register", "va-long-beach", *other, "--register", str(register_file)]
    )
    assert clash.exit_code == 2 and "registered already with other keys" in clash.output
    revoked = runner.invoke(
        app, ["deploy", "revoke", "va-long-beach", "--register", str(register_file)]
    )
    assert revoked.exit_code == 0 and signing_keys(register_file) == {}


def test_register_with_the_superlink_down_writes_nothing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "lab"\n[superlink.lab]\naddress = "127.0.0.1:1"\ninsecure = true\n'
    )
    auth, sign = _keys(tmp_path / "keys", "cleveland")
    register_file = tmp_path / "site" / "nodes.toml"
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.cli", "deploy", "register", "cleveland",
         "--auth-pub", str(auth), "--sign-pub", str(sign), "--register", str(register_file),
         "--superlink", "lab"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "FLWR_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert done.returncode != 0 and "flwr supernode register failed" in done.stderr + done.stdout
    assert not register_file.exists() and not register_file.parent.exists()
