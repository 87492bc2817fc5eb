"""Certificates: loading each `certificates:` entry, and validating the whole config's.

    info = load_certificate_entry(name, entry, base_dir)       # never raises
    findings = validate_certificates(config)                   # list[CertFinding]
    report = check_certificates(config)                        # both at once
    issues = certificate_issues(loaded)                        # for `sniui check`

Everything is parsed with `cryptography`. A file that cannot be used becomes
an error finding on the field that names it (`certificates.<name>.cert` or
`.key`), with a one-line fix; nothing here raises on bad material, so one
report shows every mistake at once. Messages name files, subjects and
OpenSSL's reasons, never file contents, so key material cannot leak into a
terminal or a log.

Errors mean a client would fail (or the engine could not build the
context); warnings mean it works today but is fragile or weak. Certificate
errors block a config from being applied.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from sniui.config.models import CertificateEntry, Config
from sniui.tls.contexts import ContextError, ContextSpec, build_server_context, describe_ssl_error
from sniui.tls.findings import CertFinding, Severity, route_findings

if TYPE_CHECKING:
    from sniui.config.loader import LoadedConfig, LocatedIssue

EXPIRY_WARNING = timedelta(days=21)
MIN_RSA_BITS = 2048

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL)
_PATH_FIX = "fix the path (relative paths are resolved against the config file's folder)"


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What one `certificates:` entry holds. Fields are None when their file did not load."""

    name: str
    cert_path: Path
    key_path: Path
    subject: str | None = None
    sans: tuple[str, ...] = ()              # DNS names, lowercased, leaf only
    issuer: str | None = None
    not_before: datetime | None = None      # UTC
    not_after: datetime | None = None       # UTC
    days_left: int | None = None            # whole days until not_after; negative once expired
    key_type: str | None = None             # "RSA", "EC P-256", "Ed25519", ...
    key_bits: int | None = None
    key_matches: bool | None = None         # None: one of the files did not load, so no comparison
    chain_ok: bool | None = None
    chain: tuple[str, ...] = ()             # subjects of every certificate in the file, leaf first
    signature_hash: str | None = None       # of the leaf, e.g. "sha256"; None for Ed25519/Ed448
    fingerprint_sha256: str | None = None
    findings: tuple[CertFinding, ...] = ()  # problems with this entry's own material

    @property
    def loaded(self) -> bool:
        """Did the certificate file yield a leaf certificate?"""
        return self.subject is not None

    def to_json(self) -> dict:
        return {
            "name": self.name, "cert": str(self.cert_path), "key": str(self.key_path),
            "subject": self.subject, "sans": list(self.sans), "issuer": self.issuer,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_left": self.days_left, "key_type": self.key_type, "key_bits": self.key_bits,
            "key_matches": self.key_matches, "chain_ok": self.chain_ok, "chain": list(self.chain),
            "signature_hash": self.signature_hash, "fingerprint_sha256": self.fingerprint_sha256,
        }


_Report = Callable[[Severity, str, Path, str, str], None]


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _resolve(base_dir: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _read(path: Path, what: str, field_name: str, report: _Report) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        report("error", field_name, path, f"{what} file {path} does not exist", _PATH_FIX)
    except IsADirectoryError:
        report("error", field_name, path, f"{what} file {path} is a directory", f"point {field_name}: at the {what} file inside it")
    except OSError as exc:
        report("error", field_name, path, f"{what} file {path} cannot be read: {exc.strerror or exc}",
               "make it readable by the user sniui runs as")
    return None


def _labels(data: bytes) -> list[str]:
    return [label.decode("ascii") for label in _PEM_LABEL.findall(data)]


def _read_certificates(path: Path, report: _Report, *, key_elsewhere: bool) -> list[x509.Certificate] | None:
    data = _read(path, "certificate", "cert", report)
    if data is None:
        return None
    if b"-----BEGIN" not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            report("error", "cert", path, f"{path} is not a PEM file (no -----BEGIN line)",
                   "cert: must name a PEM file holding the certificate, then its chain")
        else:
            report("error", "cert", path, f"{path} is a DER certificate; sniui reads PEM",
                   f"convert it: openssl x509 -inform der -in {path} -out {path}.pem, and point cert: at the .pem")
        return None
    labels = _labels(data)
    if not any(label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE") for label in labels):
        report("error", "cert", path, f"{path} holds no certificate (it holds: {', '.join(labels) or 'nothing recognisable'})",
               "cert: must name the certificate file (leaf first, then its chain); the private key belongs in key:")
        return None
    # When key: names this same file, the key check below reports its mode once.
    if key_elsewhere and any(label.endswith("PRIVATE KEY") for label in labels):
        _check_key_mode(path, "cert", f"certificate file {path} also holds a private key, and is", report)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        report("error", "cert", path, f"a certificate in {path} does not parse (damaged or truncated PEM)",
               "export the certificate and its chain again from where it was issued")
        return None
    return certificates


_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey | dsa.DSAPrivateKey


def _check_key_mode(path: Path, field_name: str, lead: str, report: _Report) -> None:
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        report("warning", field_name, path, f"{lead} open to group or others (mode {mode:04o}); "
               "a private key should be readable by its owner only", f"chmod 600 {path}")


def _read_private_key(path: Path, report: _Report) -> _PrivateKey | None:
    data = _read(path, "key", "key", report)
    if data is None:
        return None
    _check_key_mode(path, "key", f"key file {path} is", report)

    encrypted_fix = (f"store it decrypted where only sniui's user can read it: "
                     f"openssl pkey -in {path} -out DECRYPTED.key, chmod 600, and point key: there")
    if b"-----BEGIN" not in data:
        try:
            serialization.load_der_private_key(data, password=None)
        except TypeError:
            report("error", "key", path, f"key file {path} is encrypted (DER), and sniui has no passphrase source", encrypted_fix)
        except (ValueError, UnsupportedAlgorithm):
            report("error", "key", path, f"key file {path} is not a PEM private key (no -----BEGIN line)",
                   "key: must name the PEM private key that belongs to the certificate")
        else:
            report("error", "key", path, f"key file {path} is a DER key; sniui reads PEM",
                   f"convert it: openssl pkey -inform der -in {path} -out KEY.pem, and point key: there")
        return None
    labels = _labels(data)
    if "ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in data:
        report("error", "key", path, f"key file {path} is encrypted, and sniui has no passphrase source", encrypted_fix)
        return None
    block = _PEM_PRIVATE_KEY.search(data)
    if block is None:
        report("error", "key", path, f"key file {path} holds no private key (it holds: {', '.join(labels)})",
               "key: must name the PEM private key that belongs to the certificate")
        return None
    try:
        key = serialization.load_pem_private_key(block.group(0), password=None)
    except TypeError:
        report("error", "key", path, f"key file {path} is encrypted, and sniui has no passphrase source", encrypted_fix)
        return None
    except UnsupportedAlgorithm:
        report("error", "key", path, f"key file {path} holds a key type sniui's TLS library does not support",
               "use an RSA (2048+ bits), EC P-256/P-384 or Ed25519 key")
        return None
    except ValueError:
        report("error", "key", path, f"the private key in {path} does not parse (damaged, truncated, or not a key)",
               "export the private key again; it must be the one the certificate was issued for")
        return None
    if not isinstance(key, _PrivateKey):
        report("error", "key", path, f"key file {path} holds a {type(key).__name__}, which cannot sign a TLS handshake",
               "use an RSA (2048+ bits), EC P-256/P-384 or Ed25519 key")
        return None
    return key


def _describe_key(public: object) -> tuple[str | None, int | None]:
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA", public.key_size
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(public.curve.name, public.curve.name)}", public.curve.key_size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(public, dsa.DSAPublicKey):
        return "DSA", public.key_size
    return None, None


def _spki(public: object) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def _dns_sans(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower().rstrip(".") for name in extension.value.get_values_for_type(x509.DNSName))


def _signature_hash(certificate: x509.Certificate) -> hashes.HashAlgorithm | None:
    try:
        return certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> str | None:
    """Why `child` is not issued by `parent`, or None when it is (or cannot be checked)."""
    if child.issuer != parent.subject:
        return f"is issued by {child.issuer.rfc4514_string()}, not by the next certificate, {_subject(parent)}"
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return (f"names the next certificate, {_subject(parent)}, as its issuer, but its signature does not "
                "verify with that certificate's key (a different CA with the same name?)")
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None  # an algorithm cryptography cannot verify: not evidence of a wrong order
    return None


def _proper_order(certificates: list[x509.Certificate], leaf: x509.Certificate) -> list[x509.Certificate] | None:
    """The file's certificates leaf first, each followed by its issuer, if such an order exists."""
    order, rest = [leaf], [c for c in certificates if c is not leaf]
    while rest:
        nxt = next((c for c in rest if _issued_by(order[-1], c) is None), None)
        if nxt is None:
            return None
        order.append(nxt)
        rest.remove(nxt)
    return order


def _check_chain(certificates: list[x509.Certificate], key: _PrivateKey | None, path: Path, report: _Report) -> bool:
    for i in range(len(certificates) - 1):
        why = _issued_by(certificates[i], certificates[i + 1])
        if why is None:
            continue
        leaf = certificates[0]
        if key is not None:
            leaf = next((c for c in certificates if _spki(c.public_key()) == _spki(key.public_key())), leaf)
        order = _proper_order(certificates, leaf)
        if order is not None:
            fix = "reorder the file as: " + " → ".join(_subject(c) for c in order)
        else:
            fix = "put the leaf first, then the certificate that issued it, then that one's issuer; drop certificates of other chains"
        report("error", "cert", path, f"chain out of order in {path}: certificate {i + 1} ({_subject(certificates[i])}) {why}", fix)
        return False
    return True


def _check_dates(leaf: x509.Certificate, now: datetime, path: Path, report: _Report) -> None:
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    subject = _subject(leaf)
    if now < not_before:
        days = math.ceil((not_before - now).total_seconds() / 86400)
        report("error", "cert", path, f"certificate {subject} is not valid yet: it starts on {not_before:%Y-%m-%d %H:%M} UTC "
               f"(in {days} day{'s' if days != 1 else ''})",
               "check this machine's clock, or reissue the certificate with a start date in the past")
    elif now >= not_after:
        days = math.floor((now - not_after).total_seconds() / 86400)
        report("error", "cert", path, f"certificate {subject} expired on {not_after:%Y-%m-%d %H:%M} UTC ({days} days ago)",
               "renew it (e.g. certbot renew) and reload sniui")
    elif not_after - now < EXPIRY_WARNING:
        days = math.floor((not_after - now).total_seconds() / 86400)
        report("warning", "cert", path, f"certificate {subject} expires in {days} day{'s' if days != 1 else ''}, "
               f"on {not_after:%Y-%m-%d %H:%M} UTC", f"renew it before {not_after:%Y-%m-%d}; sniui picks up the new file on reload")


def _check_signatures(certificates: list[x509.Certificate], path: Path, report: _Report) -> None:
    for i, certificate in enumerate(certificates):
        self_signed = certificate.issuer == certificate.subject
        if isinstance(_signature_hash(certificate), hashes.SHA1) and (i == 0 or not self_signed):
            # A root's own signature is never checked by clients; the others are.
            report("warning", "cert", path, f"certificate {i + 1} ({_subject(certificate)}) in {path} is signed with SHA-1, "
                   "which browsers and current OpenSSL reject", "reissue it with a SHA-256 signature")


def load_certificate_entry(name: str, entry: CertificateEntry, base_dir: Path, *, now: datetime | None = None) -> CertificateInfo:
    """Load one `certificates:` entry; problems become `findings`, nothing raises."""
    now = _utc(now)
    cert_path, key_path = _resolve(base_dir, entry.cert), _resolve(base_dir, entry.key)
    found: list[CertFinding] = []

    def report(severity: Severity, field_name: str, path: Path, message: str, fix: str) -> None:
        found.append(CertFinding(severity, name, None, str(path), ("certificates", name, field_name), message, fix))

    certificates = _read_certificates(cert_path, report, key_elsewhere=cert_path != key_path)
    key = _read_private_key(key_path, report)
    values: dict = {}
    if certificates:
        leaf = certificates[0]
        digest = _signature_hash(leaf)
        values.update(
            subject=_subject(leaf), sans=_dns_sans(leaf), issuer=leaf.issuer.rfc4514_string() or "(empty issuer)",
            not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc,
            days_left=math.floor((leaf.not_valid_after_utc - now).total_seconds() / 86400),
            chain=tuple(_subject(c) for c in certificates), signature_hash=digest.name if digest else None,
            fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        )
        values["chain_ok"] = _check_chain(certificates, key, cert_path, report)
        _check_dates(leaf, now, cert_path, report)
        _check_signatures(certificates, cert_path, report)

    public = key.public_key() if key is not None else (certificates[0].public_key() if certificates else None)
    values["key_type"], values["key_bits"] = _describe_key(public)
    if key is not None and certificates:
        matches = _spki(key.public_key()) == _spki(certificates[0].public_key())
        values["key_matches"] = matches
        if not matches:
            other = next((i for i, c in enumerate(certificates) if _spki(c.public_key()) == _spki(key.public_key())), None)
            hint = (f"; it belongs to certificate {other + 1} in the file ({_subject(certificates[other])}), so the leaf is not first"
                    if other is not None else "")
            report("error", "key", key_path, f"key file {key_path} does not match the leaf certificate {_subject(certificates[0])}{hint}",
                   "point key: at the key the certificate was issued for (compare `openssl x509 -noout -pubkey` "
                   "with `openssl pkey -pubout`)" if other is None else "put the leaf certificate first in the cert file")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        report("warning", "key", key_path, f"RSA key of {public.key_size} bits is below {MIN_RSA_BITS}; browsers and OpenSSL "
               "at its default security level refuse it", "issue a new certificate with an RSA-2048 (or EC P-256) key")
    return CertificateInfo(name, cert_path, key_path, findings=tuple(found), **values)


def _openssl_refusal(info: CertificateInfo) -> CertFinding | None:
    """Load the pair the way the engine will; OpenSSL has the last word (security level, odd keys)."""
    try:
        build_server_context(ContextSpec(info.cert_path, info.key_path))
    except (ssl.SSLError, OSError, ContextError) as exc:
        reason = getattr(exc, "reason", None) or ""
        fix = {
            "EE_KEY_TOO_SMALL": "issue a new certificate with an RSA-2048 (or EC P-256) key",
            "CA_MD_TOO_WEAK": "reissue the certificate (and its chain) with SHA-256 signatures",
        }.get(reason, "check the pair with `openssl x509 -in CERT -noout -text` and `openssl pkey -in KEY -noout`")
        level = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).security_level
        return CertFinding("error", info.name, None, str(info.cert_path), ("certificates", info.name, "cert"),
                           f"OpenSSL (security level {level}) refuses to serve this certificate and key: {describe_ssl_error(exc)}", fix)
    return None


@dataclass(frozen=True)
class CertificateReport:
    certificates: dict[str, CertificateInfo]
    findings: list[CertFinding]
    routes: dict[str, list[str]] = field(default_factory=dict)   # certificate name → labels of routes using it

    @property
    def errors(self) -> list[CertFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[CertFinding]:
        return [f for f in self.findings if f.severity == "warning"]


def check_certificates(config: Config, now: datetime | None = None) -> CertificateReport:
    """Load every `certificates:` entry and check it, and the routes that use it."""
    now = _utc(now)
    infos = {name: load_certificate_entry(name, entry, config.base_dir, now=now) for name, entry in config.certificates.items()}
    findings: list[CertFinding] = []
    for info in infos.values():
        findings += info.findings
        if not any(f.severity == "error" for f in info.findings):
            refusal = _openssl_refusal(info)
            if refusal is not None:
                findings.append(refusal)
    findings += route_findings(config, infos)
    routes: dict[str, list[str]] = {name: [] for name in infos}
    for label, route in zip(config.route_labels(), config.routes):
        if route.certificate in routes:
            routes[route.certificate].append(label)
    return CertificateReport(infos, findings, routes)


def validate_certificates(config: Config, now: datetime | None = None) -> list[CertFinding]:
    """Every certificate finding of `config`: errors block applying it, warnings do not."""
    return check_certificates(config, now).findings


def certificate_issues(loaded: "LoadedConfig", now: datetime | None = None) -> list["LocatedIssue"]:
    """The findings as `file:line field:` issues, for `sniui check` and the TUI's config errors."""
    from sniui.config.loader import LocatedIssue, line_for

    file = loaded.config.source or "<config>"
    return [
        LocatedIssue(file, line_for(f.loc, loaded.lines), f.loc, f"{f.message}; fix: {f.fix}", f.severity)
        for f in validate_certificates(loaded.config, now)
    ]
