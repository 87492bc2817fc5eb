"""A throwaway certificate authority for the built-in demo.

The demo's upstreams terminate TLS themselves (sniui passes the bytes
through), so each needs a certificate a client can verify. We mint them here
with `cryptography` instead of shipping fixed keys: a key in the repository
would be a key anyone can use.

Safety properties, since users are told to paste `--cacert <this CA>`:

- the CA's private key never leaves memory; only leaf keys are written,
  because `ssl.SSLContext.load_cert_chain` reads files;
- the CA carries critical name constraints (`localhost` names and loopback
  addresses only), so even a CA file that ends up in a trust store cannot
  vouch for any real site;
- validity is short (two days) and every run makes a new CA;
- files live in a private directory (0700) and keys are created 0600 with
  O_EXCL, so no other user can read them even for an instant.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=2)
# Clients with a clock a little behind ours must still accept a certificate made just now.
BACKDATE = dt.timedelta(hours=1)

# What the CA may vouch for. RFC 5280 DNS constraints match the name and all names below it.
PERMITTED_DNS = ("localhost",)
PERMITTED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

_FILE_SAFE = re.compile(r"[^a-z0-9.-]+")


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A leaf written to disk: the certificate (PEM) and its private key (PEM, 0600)."""

    names: tuple[str, ...]
    cert_path: Path
    key_path: Path

    def __iter__(self):  # `cert, key = pki.issue(...)` reads naturally
        return iter((self.cert_path, self.key_path))


def _private_file(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or reuse a file someone else planted; the mode applies at creation.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _check_name(name: str) -> str:
    """Refuse names outside the CA's constraints up front, with a clearer message than a TLS failure."""
    name = name.strip().lower().rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        bare = name[2:] if name.startswith("*.") else name
        if not any(bare == p or bare.endswith("." + p) for p in PERMITTED_DNS):
            raise ValueError(f"{name!r}: the demo CA only issues for names under .localhost") from None
        return name
    if not any(address in network for network in PERMITTED_NETWORKS):
        raise ValueError(f"{name!r}: the demo CA only issues for loopback addresses")
    return name


class DemoPKI:
    """An in-memory demo CA that writes leaves into its own private directory.

    `DemoPKI()` makes a fresh directory under the system temp dir;
    `DemoPKI(parent)` makes it inside `parent`. Either way the directory belongs
    to this object and `close()` removes it.
    """

    def __init__(self, directory: Path | str | None = None):
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        # mkdtemp creates the directory 0700 with an unpredictable name.
        self.directory = Path(tempfile.mkdtemp(prefix="sniui-demo-", dir=directory))
        now = dt.datetime.now(dt.timezone.utc)
        self._not_before = now - BACKDATE
        self._not_after = now + VALIDITY
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sniui demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"sniui demo CA {now:%Y-%m-%d %H:%M:%S}Z"),
        ])
        ca_public = self._ca_key.public_key()
        self._ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_public)
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(self._ca_name)
            .issuer_name(self._ca_name)
            .public_key(ca_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(n) for n in PERMITTED_DNS]
                + [x509.IPAddress(n) for n in PERMITTED_NETWORKS],
                excluded_subtrees=None), critical=True)
            .add_extension(self._ca_ski, critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_pem: bytes = self._ca_cert.public_bytes(serialization.Encoding.PEM)
        self.ca_path = self.directory / "demo-ca.pem"
        # The CA certificate is public; the key behind it is never written.
        _private_file(self.ca_path, self.ca_pem, 0o644)
        self._issued: dict[tuple[str, ...], IssuedCert] = {}
        self._closed = False

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._ca_cert

    def issue(self, names: Iterable[str], *, client: bool = False) -> IssuedCert:
        """A leaf for `names` (DNS names, `*.` wildcards or loopback IPs), written as PEM files.

        The same set of names returns the same files: an upstream restarted in
        the same demo keeps its certificate. `client=True` makes a client
        certificate instead (for routes with `client_ca`).
        """
        if self._closed:
            raise RuntimeError("this demo PKI is closed")
        checked = tuple(dict.fromkeys(_check_name(n) for n in names))
        if not checked:
            raise ValueError("a certificate needs at least one name")
        key_id = checked + (("<client>",) if client else ())
        if key_id in self._issued:
            return self._issued[key_id]

        key = ec.generate_private_key(ec.SECP256R1())
        # The first DNS name doubles as the CN for tools that still display it.
        common_name = next((n for n in checked if not _is_ip(n)), checked[0])
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sniui demo"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in checked]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ca_ski), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        stem = _FILE_SAFE.sub("_", common_name.replace("*", "star")) + ("-client" if client else "")
        stem = f"{len(self._issued) + 1:02d}-{stem}"
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        _private_file(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
        _private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        issued = IssuedCert(checked, cert_path, key_path)
        self._issued[key_id] = issued
        return issued

    def server_context(self, names: Iterable[str]) -> ssl.SSLContext:
        """A server-side context presenting a leaf for `names`."""
        issued = self.issue(names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(issued.cert_path, issued.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this demo CA and checks host names."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        # create_default_context(cadata=...) also keeps the system store out: only the demo CA is trusted.
        return context

    def close(self) -> None:
        """Remove the directory and everything in it (idempotent)."""
        self._closed = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "DemoPKI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Deliberately no key material, and no PEM: this ends up in logs and tracebacks.
        return f"<DemoPKI {self.directory} ({len(self._issued)} leaves)>"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
