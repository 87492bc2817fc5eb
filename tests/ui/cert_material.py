"""Certificate material made at test time, byte-for-byte the same on every run.

Snapshot tests show subjects, SANs, dates and findings, so the material must
not vary: keys are derived from fixed numbers and ECDSA signatures are
deterministic (RFC 6979), and every date is relative to the replay clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key(seed: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(10_000_019 * seed + 7, ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_material(directory: Path, now: datetime) -> None:
    """certs/{good,expired,mismatch,soon}.pem and keys under `directory`, issued by one test CA."""
    certs = directory / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    ca_key = _key(1)
    ca = _sign(
        x509.CertificateBuilder().subject_name(_name("Example Test CA")).issuer_name(_name("Example Test CA"))
        .public_key(ca_key.public_key()).serial_number(1001)
        .not_valid_before(now - timedelta(days=400)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True),
        ca_key,
    )

    def leaf(seed: int, common_name: str, sans: list[str], not_before: datetime, not_after: datetime):
        key = _key(seed)
        cert = _sign(
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2000 + seed)
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True),
            ca_key,
        )
        return cert, key

    day = timedelta(days=1)
    good, good_key = leaf(2, "api.example.com", ["api.example.com", "www.example.com"], now - 30 * day, now + 200 * day)
    expired, expired_key = leaf(3, "legacy.example.com", ["legacy.example.com"], now - 400 * day, now - 3 * day)
    mismatch, _ = leaf(4, "shop.example.com", ["shop.example.com"], now - 10 * day, now + 80 * day)
    soon, soon_key = leaf(5, "beta.example.com", ["beta.example.com"], now - 70 * day, now + 10 * day)
    (certs / "ca.pem").write_bytes(_pem(ca))
    for stem, cert, key in (("good", good, good_key), ("expired", expired, expired_key), ("soon", soon, soon_key)):
        (certs / f"{stem}.pem").write_bytes(_pem(cert, ca))
        (certs / f"{stem}.key").write_bytes(_key_pem(key))
    (certs / "mismatch.pem").write_bytes(_pem(mismatch, ca))
    (certs / "mismatch.key").write_bytes(_key_pem(_key(99)))   # a key the certificate was not issued for
    for path in certs.iterdir():
        if path.suffix == ".key":
            path.chmod(0o600)


CERT_CONFIG = """\
upstreams:
  api: {servers: ["127.0.0.1:8080"]}
certificates:
  good: {cert: certs/good.pem, key: certs/good.key}
  expired: {cert: certs/expired.pem, key: certs/expired.key}
  mismatch: {cert: certs/mismatch.pem, key: certs/mismatch.key}
  soon: {cert: certs/soon.pem, key: certs/soon.key}
routes:
  - name: api
    sni: api.example.com
    mode: terminate
    certificate: good
    upstream: api
  - name: legacy
    sni: legacy.example.com
    mode: terminate
    certificate: expired
    upstream: "127.0.0.1:8081"
  - name: shop
    sni: shop.example.com
    mode: terminate
    certificate: mismatch
    upstream: "127.0.0.1:8082"
  - name: beta
    sni: beta.example.com
    upstream: "127.0.0.1:8083"
"""
