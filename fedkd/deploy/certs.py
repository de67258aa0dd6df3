"""Certificates and keys for a deployment, with the ``cryptography`` package (no openssl).

* The coordinating site's **CA**: an EC P-384 key, encrypted at rest with a passphrase,
  and a self-signed CA certificate.
* The **SuperLink's certificate**, signed by the CA, for the names and addresses it is
  reached at (by default localhost, 127.0.0.1 and ::1: its own SuperExec connects to it).
* A **hospital node's keys**, made at the hospital: an EC P-384 key pair in OpenSSH format
  for SuperNode authentication (Flower 1.41 refuses ed25519 there), and an Ed25519 key
  pair that signs the node's replies.  Only the ``.pub`` files leave the hospital.

Private keys are written 0600 and never overwritten unless asked (``force``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVE = ec.SECP384R1
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 825


class KeyExistsError(FileExistsError):
    """A key or certificate would be overwritten without ``force``."""


@dataclass(frozen=True)
class Issued:
    """Files written and when the certificate (if any) expires."""

    certificate: Path | None
    private_key: Path
    public_key: Path | None = None
    not_after: dt.datetime | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private(path: Path, data: bytes, *, force: bool) -> Path:
    """Write a secret 0600, refusing an existing file unless ``force``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not force:
        raise KeyExistsError(f"{path} exists: pass --force to replace it (the old key is lost)")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    os.chmod(path, 0o600)
    return path


def write_public(path: Path, data: bytes, *, force: bool) -> Path:
    if path.exists() and not force:
        raise KeyExistsError(f"{path} exists: pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_ca(
    out: Path, *, passphrase: bytes, name: str = "fedkd federation CA", days: int = CA_DAYS,
    force: bool = False,
) -> Issued:  # fmt: skip
    """``ca.crt`` and ``ca.key`` (encrypted with ``passphrase``) in ``out``."""
    if len(passphrase) < 8:
        raise ValueError("the CA passphrase must be at least 8 characters")
    key = ec.generate_private_key(CURVE())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    key_path = write_private(out / "ca.key", encrypted, force=force)
    cert_path = write_public(
        out / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), force=force
    )
    return Issued(cert_path, key_path, not_after=cert.not_valid_after_utc)


def load_ca(ca_dir: Path, passphrase: bytes) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and its key (a wrong passphrase is a clear error)."""
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    try:
        key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), passphrase)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot open {ca_dir / 'ca.key'}: wrong passphrase?") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_dir / 'ca.key'} is not an EC key")
    return cert, key


def make_server_cert(
    ca_dir: Path, out: Path, *, passphrase: bytes, sans: tuple[str, ...] = DEFAULT_SANS,
    days: int = SERVER_DAYS, force: bool = False,
) -> Issued:  # fmt: skip
    """``server.pem`` and ``server.key`` for the SuperLink, signed by the CA in ``ca_dir``."""
    ca_cert, ca_key = load_ca(ca_dir, passphrase)
    key = ec.generate_private_key(CURVE())
    now = _now()
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = write_private(out / "server.key", plain, force=force)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path = write_public(out / "server.pem", pem, force=force)
    return Issued(cert_path, key_path, not_after=cert.not_valid_after_utc)


def make_node_keys(out: Path, name: str, *, force: bool = False) -> tuple[Issued, Issued]:
    """At the hospital: ``<name>.auth``/``.auth.pub`` (EC P-384, OpenSSH, for SuperNode
    authentication) and ``<name>.sign``/``.sign.pub`` (Ed25519, for signing replies)."""
    if not name or any(c in name for c in "/\\\0") or name in {".", ".."}:
        raise ValueError(f"node name {name!r} must be a plain file-name-safe word")
    auth = ec.generate_private_key(CURVE())
    auth_private = auth.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    auth_public = auth.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    sign = ed25519.Ed25519PrivateKey.generate()
    sign_private = sign.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sign_public = sign.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    for path in (out / f"{name}.auth", out / f"{name}.sign"):
        if path.exists() and not force:
            raise KeyExistsError(f"{path} exists: pass --force to replace it (the old key is lost)")
    authentication = Issued(
        None,
        write_private(out / f"{name}.auth", auth_private, force=force),
        write_public(out / f"{name}.auth.pub", auth_public + b"\n", force=force),
    )
    signing = Issued(
        None,
        write_private(out / f"{name}.sign", sign_private, force=force),
        write_public(out / f"{name}.sign.pub", sign_public + b"\n", force=force),
    )
    return authentication, signing


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def fingerprint(certificate: Path) -> str:
    """``SHA256:AB:CD:…`` of a certificate: read out through a second channel, compared
    by whoever receives the file (a substituted ``ca.crt`` has another fingerprint)."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
