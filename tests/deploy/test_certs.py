"""Certificates and node keys: a CA encrypted at rest, a SuperLink certificate the CA
signed for the right names, node keys Flower accepts, secrets 0600, nothing overwritten."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.deploy.certs import KeyExistsError, make_ca, make_node_keys, make_server_cert

PASS = b"correct horse battery"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_key_is_encrypted_and_the_server_certificate_chains_to_it(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", passphrase=PASS)
    assert _mode(ca.private_key) == 0o600
    with pytest.raises(TypeError):  # encrypted: no key without the passphrase
        serialization.load_pem_private_key(ca.private_key.read_bytes(), None)
    server = make_server_cert(tmp_path / "ca", tmp_path / "link", passphrase=PASS)
    assert server.certificate is not None and _mode(server.private_key) == 0o600
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate(server.certificate.read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert server.not_after is not None and ca.not_after is not None
    assert server.not_after <= ca.not_after
    with pytest.raises(ValueError, match="wrong passphrase"):
        make_server_cert(tmp_path / "ca", tmp_path / "other", passphrase=b"not the passphrase")


def test_node_keys_are_what_flower_and_the_signatures_need(tmp_path: Path) -> None:
    auth, sign = make_node_keys(tmp_path, "cleveland")
    assert auth.public_key is not None and sign.public_key is not None
    assert auth.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")  # not ed25519
    assert _mode(auth.private_key) == 0o600 and _mode(sign.private_key) == 0o600
    private = serialization.load_ssh_private_key(auth.private_key.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    signer = serialization.load_pem_private_key(sign.private_key.read_bytes(), None)
    assert isinstance(signer, ed25519.Ed25519PrivateKey)
    verifier = serialization.load_ssh_public_key(sign.public_key.read_bytes())
    assert isinstance(verifier, ed25519.Ed25519PublicKey)
    verifier.verify(signer.sign(b"reply"), b"reply")


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    make_node_keys(tmp_path, "hungary")
    kept = (tmp_path / "hungary.sign").read_bytes()
    with pytest.raises(KeyExistsError, match="--force"):
        make_node_keys(tmp_path, "hungary")
    assert (tmp_path / "hungary.sign").read_bytes() == kept
    make_node_keys(tmp_path, "hungary", force=True)
    assert (tmp_path / "hungary.sign").read_bytes() != kept


def test_the_cli_makes_all_three_and_refuses_a_short_passphrase(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"FEDKD_CA_PASSPHRASE": PASS.decode()}
    assert (
        runner.invoke(app, ["certs", "ca", "--out", str(tmp_path / "ca")], env=env).exit_code == 0
    )
    served = runner.invoke(
        app,
        ["certs", "server", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "link"),
         "--san", "superlink.example.org", "--san", "10.0.0.5"],
        env=env,
    )  # fmt: skip
    assert served.exit_code == 0, served.output
    assert "superlink.example.org, 10.0.0.5" in served.output and "expires" in served.output
    node = runner.invoke(app, ["certs", "node", "va-long-beach", "--out", str(tmp_path / "h")])
    assert node.exit_code == 0 and "send only" in node.output
    again = runner.invoke(app, ["certs", "node", "va-long-beach", "--out", str(tmp_path / "h")])
    assert again.exit_code == 2 and "--force" in again.output
    short = runner.invoke(
        app, ["certs", "ca", "--out", str(tmp_path / "ca2")], env={"FEDKD_CA_PASSPHRASE": "short"}
    )
    assert short.exit_code == 2 and "at least 8 characters" in short.output


def test_the_fingerprint_read_out_tells_two_cas_apart(tmp_path: Path) -> None:
    import hashlib

    from cryptography import x509

    from fedkd.deploy.certs import fingerprint, make_ca

    make_ca(tmp_path / "site", passphrase=b"correct horse battery")
    make_ca(tmp_path / "impostor", passphrase=b"correct horse battery")
    ours = fingerprint(tmp_path / "site" / "ca.crt")
    der = x509.load_pem_x509_certificate((tmp_path / "site" / "ca.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert ours == "SHA256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert fingerprint(tmp_path / "impostor" / "ca.crt") != ours
