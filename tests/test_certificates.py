"""Certificate loading, findings and server contexts, with material built per test.

Each faulty certificate or key is made here with `cryptography` (or trustme),
written next to a config file, and the finding's message and config location
are asserted. The context tests complete real handshakes over ssl.MemoryBIO
pairs, the way the engine terminates TLS after peeking at the ClientHello.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from sniui.config import load_file
from sniui.config.models import CertificateEntry
from sniui.routing.table import RouteTable
from sniui.tls.certificates import certificate_issues, check_certificates, load_certificate_entry, validate_certificates
from sniui.tls.contexts import DEFAULT_ALPN, ContextError, ContextSpec, ServerContexts, build_server_context
from sniui.tls.findings import CertFinding, san_matches

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


# -- material -------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None, traditional: bool = False) -> bytes:
        encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    cn: str,
    sans: list[str] = (),
    *,
    issuer: Issued | None = None,
    key: object | None = None,
    is_ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    issuer_name: str | None = None,
) -> Issued:
    """A certificate for `cn`, signed by `issuer` (self-signed without one), SHA-256."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer_name) if issuer_name else issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    signer = issuer.key if issuer else key
    digest = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, digest), key)


def sha1_signed(cn: str, sans: list[str], ca: Issued) -> Issued:
    """A leaf signed with SHA-1 by an RSA CA.

    cryptography's builder refuses SHA-1, so sign with SHA-256 and patch: the
    sha1WithRSAEncryption OID has the same length as sha256WithRSAEncryption
    and an RSA signature the same length whatever the hash, so replacing both
    OID copies and re-signing the to-be-signed part keeps every DER length valid.
    """
    assert isinstance(ca.key, rsa.RSAPrivateKey)
    leaf = issue(cn, sans, issuer=ca)
    sha256_oid = bytes.fromhex("06092a864886f70d01010b")
    sha1_oid = bytes.fromhex("06092a864886f70d010105")
    tbs = leaf.cert.tbs_certificate_bytes.replace(sha256_oid, sha1_oid)
    signature = ca.key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    head = der[: -len(signature)].replace(leaf.cert.tbs_certificate_bytes, tbs).replace(sha256_oid, sha1_oid)
    patched = x509.load_der_x509_certificate(head + signature)
    assert isinstance(patched.signature_hash_algorithm, hashes.SHA1)
    return Issued(patched, leaf.key)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Test Root CA", is_ca=True)


@pytest.fixture(scope="module")
def intermediate(ca: Issued) -> Issued:
    return issue("Test Intermediate CA", issuer=ca, is_ca=True)


class Files:
    """A config folder: write material, then a sniui.yaml that uses it."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, name: str, data: bytes, mode: int = 0o600) -> Path:
        path = self.root / name
        path.write_bytes(data)
        os.chmod(path, mode)
        return path

    def entry(self, name: str, leaf: Issued, *chain: Issued, key: bytes | None = None, key_mode: int = 0o600) -> None:
        self.write(f"{name}.pem", b"".join(c.cert_pem for c in (leaf, *chain)), 0o644)
        self.write(f"{name}.key", key if key is not None else leaf.key_pem(), key_mode)

    def config(self, text: str):
        path = self.root / "sniui.yaml"
        path.write_text(textwrap.dedent(text))
        return load_file(path)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


ONE_CERT = """\
    certificates:
      web:
        cert: web.pem
        key: web.key
    routes:
      - name: api
        sni: api.example.com
        mode: terminate
        certificate: web
        upstream: "127.0.0.1:8080"
"""


def findings_of(loaded, **kwargs) -> list[CertFinding]:
    return validate_certificates(loaded.config, **kwargs)


def only(findings: list[CertFinding], severity: str | None = None) -> CertFinding:
    picked = [f for f in findings if severity is None or f.severity == severity]
    assert len(picked) == 1, [str(f) for f in findings]
    return picked[0]


# -- a good certificate ------------------------------------------------------------


def test_good_entry_is_described_and_has_no_findings(files: Files, ca: Issued, intermediate: Issued) -> None:
    leaf = issue("api.example.com", ["API.Example.com", "*.apps.example.com"], issuer=intermediate)
    files.entry("web", leaf, intermediate, ca)
    loaded = files.config(ONE_CERT)

    info = load_certificate_entry("web", loaded.config.certificates["web"], loaded.config.base_dir)
    assert info.loaded
    assert info.subject == "CN=api.example.com"
    assert info.sans == ("api.example.com", "*.apps.example.com")   # lowercased
    assert info.issuer == "CN=Test Intermediate CA"
    assert info.chain == ("CN=api.example.com", "CN=Test Intermediate CA", "CN=Test Root CA")
    assert (info.key_type, info.key_bits) == ("EC P-256", 256)
    assert info.key_matches is True and info.chain_ok is True
    assert info.signature_hash == "sha256"
    assert 363 <= info.days_left <= 365
    assert info.cert_path == files.root / "web.pem"
    assert findings_of(loaded) == []


def test_rsa_and_ed25519_keys_are_named(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api.example.com", ["api.example.com"], issuer=ca, key=rsa.generate_private_key(65537, 2048)))
    info = load_certificate_entry("web", CertificateEntry(cert="web.pem", key="web.key"), files.root)
    assert (info.key_type, info.key_bits) == ("RSA", 2048)
    files.entry("web", issue("api.example.com", ["api.example.com"], key=ed25519.Ed25519PrivateKey.generate()))
    info = load_certificate_entry("web", CertificateEntry(cert="web.pem", key="web.key"), files.root)
    assert (info.key_type, info.signature_hash) == ("Ed25519", None)
    assert info.findings == ()


# -- files ------------------------------------------------------------------------------


def test_missing_certificate_file(files: Files) -> None:
    files.write("web.key", issue("x", ["api.example.com"]).key_pem())
    loaded = files.config(ONE_CERT)
    finding = only(findings_of(loaded))
    assert finding.severity == "error"
    assert finding.loc == ("certificates", "web", "cert")
    assert finding.message == f"certificate file {files.root / 'web.pem'} does not exist"
    assert "relative paths are resolved against the config file's folder" in finding.fix
    issue_ = only(certificate_issues(loaded))
    assert issue_.line == 3 and str(issue_).startswith(f"{files.root / 'sniui.yaml'}:3 certificates.web.cert: certificate file")


def test_missing_key_file(files: Files) -> None:
    files.write("web.pem", issue("x", ["api.example.com"]).cert_pem)
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "key")
    assert finding.message == f"key file {files.root / 'web.key'} does not exist"


def test_unreadable_certificate_file(files: Files) -> None:
    # The tests may run as root, who reads any file whatever its mode; a directory
    # is unreadable for everyone.
    (files.root / "web.pem").mkdir()
    files.write("web.key", issue("x", ["api.example.com"]).key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "cert")
    assert "is a directory" in finding.message


def test_certificate_file_that_is_not_pem(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", os.urandom(300))
    files.write("web.key", leaf.key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "cert")
    assert "is not a PEM file" in finding.message


def test_der_certificate_is_named_as_such(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert.public_bytes(serialization.Encoding.DER))
    files.write("web.key", leaf.key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert "is a DER certificate; sniui reads PEM" in finding.message
    assert "openssl x509 -inform der" in finding.fix


def test_key_given_as_certificate_is_not_a_certificate_and_is_not_echoed(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.key_pem())
    files.write("web.key", leaf.key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "cert")
    assert "holds no certificate (it holds: PRIVATE KEY)" in finding.message
    assert_no_key_material([finding], leaf)


def test_damaged_certificate_pem(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    pem = leaf.cert_pem
    files.write("web.pem", pem[:40] + b"AAAA" + pem[60:])
    files.write("web.key", leaf.key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert "does not parse" in finding.message and finding.loc == ("certificates", "web", "cert")


def test_key_that_does_not_parse(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert_pem)
    files.write("web.key", b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "key")
    assert "does not parse" in finding.message


def test_der_key_is_named_as_such(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert_pem)
    files.write("web.key", leaf.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "key")
    assert "is a DER key; sniui reads PEM" in finding.message and "openssl pkey -inform der" in finding.fix


def test_certificate_given_as_key(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert_pem)
    files.write("web.key", leaf.cert_pem)
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "key")
    assert "holds no private key (it holds: CERTIFICATE)" in finding.message


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional"])
def test_encrypted_key_has_no_passphrase_source(files: Files, traditional: bool) -> None:
    leaf = issue("api.example.com", ["api.example.com"], key=rsa.generate_private_key(65537, 2048))
    files.entry("web", leaf, key=leaf.key_pem(b"secret", traditional=traditional))
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.severity == "error" and finding.loc == ("certificates", "web", "key")
    assert "is encrypted, and sniui has no passphrase source" in finding.message
    assert "openssl pkey" in finding.fix


def test_combined_certificate_and_key_file_loads(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert_pem + leaf.key_pem())
    loaded = files.config(ONE_CERT.replace("key: web.key", "key: web.pem"))
    assert findings_of(loaded) == []


def test_certificate_file_holding_a_key_readable_by_others(files: Files) -> None:
    # Certificate files are usually 0644; one that also holds the key leaks it.
    leaf = issue("api.example.com", ["api.example.com"])
    files.write("web.pem", leaf.cert_pem + leaf.key_pem(), 0o644)
    files.write("web.key", leaf.key_pem())
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "cert")
    assert finding.message == (f"certificate file {files.root / 'web.pem'} also holds a private key, and is open to group "
                               "or others (mode 0644); a private key should be readable by its owner only")
    assert finding.fix == f"chmod 600 {files.root / 'web.pem'}"
    # Named by both cert: and key:, the file's mode is reported once, on key:.
    finding = only(findings_of(files.config(ONE_CERT.replace("key: web.key", "key: web.pem"))))
    assert finding.loc == ("certificates", "web", "key") and finding.fix == f"chmod 600 {files.root / 'web.pem'}"


# -- key ------------------------------------------------------------------------------


def test_key_that_does_not_match_the_leaf(files: Files, ca: Issued) -> None:
    leaf = issue("api.example.com", ["api.example.com"], issuer=ca)
    other = issue("api.example.com", ["api.example.com"], issuer=ca)
    files.entry("web", leaf, key=other.key_pem())
    loaded = files.config(ONE_CERT)
    finding = only(findings_of(loaded))
    assert finding.severity == "error" and finding.loc == ("certificates", "web", "key")
    assert finding.message == f"key file {files.root / 'web.key'} does not match the leaf certificate CN=api.example.com"
    info = check_certificates(loaded.config).certificates["web"]
    assert info.key_matches is False


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_group_or_others(files: Files, mode: int) -> None:
    files.entry("web", issue("api.example.com", ["api.example.com"]), key_mode=mode)
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.severity == "warning" and finding.loc == ("certificates", "web", "key")
    assert f"is open to group or others (mode {mode:04o})" in finding.message
    assert finding.fix == f"chmod 600 {files.root / 'web.key'}"


def test_small_rsa_key(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"], key=rsa.generate_private_key(65537, 1024))
    files.entry("web", leaf)
    findings = findings_of(files.config(ONE_CERT))
    warning = only(findings, "warning")
    assert warning.loc == ("certificates", "web", "key")
    assert warning.message.startswith("RSA key of 1024 bits is below 2048")
    # Current OpenSSL refuses such a key outright; the engine could not serve it,
    # so that is reported as an error with OpenSSL's reason.
    if ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).security_level >= 2:
        error = only(findings, "error")
        assert "OpenSSL (security level" in error.message and "EE_KEY_TOO_SMALL" in error.message
        assert "RSA-2048" in error.fix


# -- chain ------------------------------------------------------------------------------


def test_chain_in_reverse_order(files: Files, ca: Issued, intermediate: Issued) -> None:
    leaf = issue("api.example.com", ["api.example.com"], issuer=intermediate)
    files.write("web.pem", intermediate.cert_pem + leaf.cert_pem)
    files.write("web.key", leaf.key_pem())
    findings = findings_of(files.config(ONE_CERT))
    chain = next(f for f in findings if "chain out of order" in f.message)
    assert chain.severity == "error" and chain.loc == ("certificates", "web", "cert")
    assert "certificate 1 (CN=Test Intermediate CA) is issued by CN=Test Root CA, not by the next certificate, CN=api.example.com" in chain.message
    assert chain.fix == "reorder the file as: CN=api.example.com → CN=Test Intermediate CA"
    key = next(f for f in findings if f.loc[-1] == "key")
    assert "it belongs to certificate 2 in the file (CN=api.example.com), so the leaf is not first" in key.message


def test_chain_with_root_before_intermediate(files: Files, ca: Issued, intermediate: Issued) -> None:
    leaf = issue("api.example.com", ["api.example.com"], issuer=intermediate)
    files.entry("web", leaf, ca, intermediate)
    loaded = files.config(ONE_CERT)
    finding = only(findings_of(loaded))
    assert finding.message.endswith("certificate 1 (CN=api.example.com) is issued by CN=Test Intermediate CA, "
                                    "not by the next certificate, CN=Test Root CA")
    assert finding.fix == "reorder the file as: CN=api.example.com → CN=Test Intermediate CA → CN=Test Root CA"
    assert check_certificates(loaded.config).certificates["web"].chain_ok is False


def test_chain_with_right_name_but_wrong_signer(files: Files, intermediate: Issued) -> None:
    # An impostor with the intermediate's name: the names line up, only the signature tells.
    impostor = issue("Test Intermediate CA", is_ca=True)
    leaf = issue("api.example.com", ["api.example.com"], issuer=intermediate)
    files.entry("web", leaf, impostor)
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.loc == ("certificates", "web", "cert")
    assert "its signature does not verify with that certificate's key" in finding.message


def test_sha1_signature(files: Files) -> None:
    rsa_ca = issue("SHA-1 CA", is_ca=True, key=rsa.generate_private_key(65537, 2048))
    leaf = sha1_signed("api.example.com", ["api.example.com"], rsa_ca)
    files.entry("web", leaf, rsa_ca)
    findings = findings_of(files.config(ONE_CERT))
    warning = only(findings, "warning")
    assert warning.loc == ("certificates", "web", "cert")
    assert "certificate 1 (CN=api.example.com)" in warning.message and "is signed with SHA-1" in warning.message
    assert warning.fix == "reissue it with a SHA-256 signature"
    # The patched signature is genuine: the chain check (which verifies signatures) passes.
    assert not any("chain out of order" in f.message for f in findings)
    if ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).security_level >= 2:
        assert "CA_MD_TOO_WEAK" in only(findings, "error").message   # and OpenSSL 3 will not serve it


# -- dates -----------------------------------------------------------------------------


def test_expired_leaf(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api.example.com", ["api.example.com"], issuer=ca,
                             not_before=NOW - 100 * DAY, not_after=NOW - 3 * DAY - dt.timedelta(hours=1)))
    loaded = files.config(ONE_CERT)
    finding = only(findings_of(loaded))
    assert finding.severity == "error" and finding.loc == ("certificates", "web", "cert")
    assert "certificate CN=api.example.com expired on" in finding.message and "(3 days ago)" in finding.message
    assert check_certificates(loaded.config).certificates["web"].days_left == -4


def test_not_yet_valid_leaf(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api.example.com", ["api.example.com"], issuer=ca,
                             not_before=NOW + 2 * DAY - dt.timedelta(hours=1), not_after=NOW + 100 * DAY))
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.severity == "error"
    assert "is not valid yet" in finding.message and "(in 2 days)" in finding.message
    assert "clock" in finding.fix


def test_expires_within_21_days(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api.example.com", ["api.example.com"], issuer=ca,
                             not_after=NOW + 10 * DAY + dt.timedelta(hours=1)))
    finding = only(findings_of(files.config(ONE_CERT)))
    assert finding.severity == "warning" and finding.loc == ("certificates", "web", "cert")
    assert "expires in 10 days" in finding.message


def test_expiry_boundary_uses_the_given_clock(files: Files, ca: Issued) -> None:
    not_after = dt.datetime(2031, 6, 1, tzinfo=dt.timezone.utc)
    files.entry("web", issue("api.example.com", ["api.example.com"], issuer=ca,
                             not_before=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), not_after=not_after))
    loaded = files.config(ONE_CERT)
    assert findings_of(loaded, now=not_after - 21 * DAY) == []
    assert "expires in 20 days" in only(findings_of(loaded, now=not_after - 21 * DAY + dt.timedelta(seconds=1))).message
    assert "expired" in only(findings_of(loaded, now=not_after)).message


# -- routes and names ----------------------------------------------------------------------


def routes_yaml(*routes: str, certificates: str = "web") -> str:
    certs = "".join(f"      {name}:\n        cert: {name}.pem\n        key: {name}.key\n" for name in certificates.split())
    return "    certificates:\n" + certs + "    routes:\n" + "".join(textwrap.indent(textwrap.dedent(r), "      ") for r in routes)


def terminate(sni: str, name: str, upstream: str = "127.0.0.1:8080", certificate: str = "web", extra: str = "") -> str:
    return f"""\
        - name: {name}
          sni: {sni}
          mode: terminate
          certificate: {certificate}
          upstream: "{upstream}"
        """ + textwrap.indent(textwrap.dedent(extra), "  ")


@pytest.mark.parametrize("san,name,covered", [
    ("api.example.com", "api.example.com", True),
    ("*.example.com", "api.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "api.example.org", False),
])
def test_san_matching_is_rfc_6125(san: str, name: str, covered: bool) -> None:
    assert san_matches(san, name) is covered


def test_route_name_not_covered_by_sans(files: Files, ca: Issued) -> None:
    files.entry("web", issue("www.example.com", ["www.example.com", "*.apps.example.com"], issuer=ca))
    loaded = files.config(routes_yaml(terminate('["www.example.com", "x.apps.example.com", "api.example.com"]', "site")))
    finding = only(findings_of(loaded))
    assert finding.severity == "error" and finding.route == "site" and finding.certificate == "web"
    assert finding.loc == ("routes", 0, "sni", 2)
    assert finding.message == ("api.example.com is not covered: certificate 'web' lists www.example.com, *.apps.example.com; "
                               "clients will refuse the handshake")
    assert finding.file == str(files.root / "web.pem")
    located = only(certificate_issues(loaded))
    assert located.line == 7 and str(located).startswith(f"{files.root / 'sniui.yaml'}:7 routes[0].sni[2]: api.example.com")


def test_certificate_without_san(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api.example.com", [], issuer=ca))
    finding = only(findings_of(files.config(routes_yaml(terminate("api.example.com", "api")))))
    assert "has no DNS subjectAltName (clients ignore the subject CN)" in finding.message


def test_route_wildcard_deeper_than_certificate_wildcard(files: Files, ca: Issued) -> None:
    files.entry("web", issue("apps", ["*.apps.example.com"], issuer=ca))
    finding = only(findings_of(files.config(routes_yaml(terminate('"*.apps.example.com"', "apps")))))
    assert finding.severity == "warning" and finding.loc == ("routes", 0, "sni", 0)
    assert "matches names at any depth below apps.example.com" in finding.message
    assert "covers exactly one label (RFC 6125)" in finding.message


def test_route_wildcard_without_certificate_wildcard(files: Files, ca: Issued) -> None:
    files.entry("web", issue("apps", ["a.apps.example.com", "*.example.com"], issuer=ca))
    finding = only(findings_of(files.config(routes_yaml(terminate('"*.apps.example.com"', "apps")))))
    assert finding.severity == "error"
    assert "matches every name below apps.example.com, but the certificate has no *.apps.example.com" in finding.message
    assert "it covers only a.apps.example.com below apps.example.com" in finding.message


def test_dot_wildcard_needs_the_base_name_too(files: Files, ca: Issued) -> None:
    files.entry("web", issue("org", ["*.example.org"], issuer=ca))
    findings = findings_of(files.config(routes_yaml(terminate('".example.org"', "org"))))
    error = only(findings, "error")
    assert error.message.startswith(".example.org also matches example.org itself, which is not covered")
    assert "RFC 6125" in only(findings, "warning").message


def test_regex_route_cannot_be_proven(files: Files, ca: Issued) -> None:
    files.entry("web", issue("k8s", ["*.k8s.example.com"], issuer=ca))
    finding = only(findings_of(files.config(routes_yaml(terminate('"~^[a-z]+\\\\.k8s\\\\.example\\\\.com$"', "k8s")))))
    assert finding.severity == "warning" and finding.loc == ("routes", 0, "sni", 0)
    assert "cannot be proven to be covered by the certificate" in finding.message
    assert "sniui match" in finding.fix


def test_trailing_wildcard_route(files: Files, ca: Issued) -> None:
    files.entry("web", issue("www", ["www.example.com"], issuer=ca))
    assert only(findings_of(files.config(routes_yaml(terminate('"www.example.*"', "www"))))).severity == "warning"
    error = only(findings_of(files.config(routes_yaml(terminate('"shop.example.*"', "shop")))))
    assert error.severity == "error" and "no name of the certificate does" in error.message


def test_passthrough_routes_are_not_checked_against_certificates(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api", ["api.example.com"], issuer=ca))
    loaded = files.config(routes_yaml('- sni: other.example.net\n  upstream: "10.0.0.1:443"\n'))
    assert findings_of(loaded) == []


# -- client CA -------------------------------------------------------------------------------------


def test_client_ca_missing(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api", ["api.example.com"], issuer=ca))
    loaded = files.config(routes_yaml(terminate("api.example.com", "api", extra="client_ca: clients.pem\n")))
    finding = only(findings_of(loaded))
    assert finding.severity == "error" and finding.loc == ("routes", 0, "client_ca") and finding.route == "api"
    assert finding.message == f"client CA file {files.root / 'clients.pem'} does not exist"
    assert only(certificate_issues(loaded)).line == 11


def test_client_ca_that_is_not_a_ca(files: Files, ca: Issued) -> None:
    leaf = issue("api", ["api.example.com"], issuer=ca)
    files.entry("web", leaf)
    files.write("clients.pem", leaf.cert_pem)
    finding = only(findings_of(files.config(routes_yaml(terminate("api.example.com", "api", extra="client_ca: clients.pem\n")))))
    assert "holds CN=api, which is not a CA certificate" in finding.message


def test_client_ca_that_is_not_pem(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api", ["api.example.com"], issuer=ca))
    files.write("clients.pem", b"just some text\n")
    finding = only(findings_of(files.config(routes_yaml(terminate("api.example.com", "api", extra="client_ca: clients.pem\n")))))
    assert finding.message == f"client CA file {files.root / 'clients.pem'} is not PEM"


def test_good_client_ca(files: Files, ca: Issued) -> None:
    files.entry("web", issue("api", ["api.example.com"], issuer=ca))
    files.write("clients.pem", ca.cert_pem)
    assert findings_of(files.config(routes_yaml(terminate("api.example.com", "api", extra="client_ca: clients.pem\n")))) == []


# -- HTTP/2 coalescing ------------------------------------------------------------------------------


H2 = "alpn: [h2, http/1.1]\n"


def test_h2_coalescing_across_routes_sharing_a_wildcard_certificate(files: Files, ca: Issued) -> None:
    files.entry("web", issue("wild", ["*.example.com"], issuer=ca))
    loaded = files.config(routes_yaml(
        terminate("api.example.com", "api", "127.0.0.1:8080", extra=H2),
        terminate("admin.example.com", "admin", "127.0.0.1:9090", extra="alpn: [http/1.1]\n"),
    ))
    finding = only(findings_of(loaded))
    assert finding.severity == "warning" and finding.loc == ("routes", 0, "alpn") and finding.route == "api"
    assert finding.message.startswith("route 'api' offers h2 with certificate 'web', which also covers admin.example.com routed to 'admin'")
    assert "connection coalescing" in finding.message and "can reach 127.0.0.1:8080" in finding.message
    assert finding.fix == ("give 'api' a certificate that does not cover the names of 'admin', "
                           "or set alpn: [http/1.1] on 'api'")
    assert only(certificate_issues(loaded)).line == 11   # the alpn: line of route 'api'


def test_h2_coalescing_reports_each_route_offering_h2(files: Files, ca: Issued) -> None:
    files.entry("web", issue("wild", ["*.example.com"], issuer=ca))
    findings = findings_of(files.config(routes_yaml(
        terminate("api.example.com", "api", "127.0.0.1:8080", extra=H2),
        terminate("admin.example.com", "admin", "127.0.0.1:9090", extra=H2),
    )))
    assert sorted(f.route for f in findings) == ["admin", "api"]


def test_h2_coalescing_onto_a_route_reached_through_the_wildcard(files: Files, ca: Issued) -> None:
    # The certificate's *.example.com covers names that routing sends to the
    # passthrough wildcard route, so the probe name stands for them.
    files.entry("web", issue("wild", ["api.example.com", "*.example.com"], issuer=ca))
    finding = only(findings_of(files.config(routes_yaml(
        terminate("api.example.com", "api", extra=H2),
        '- sni: "*.example.com"\n  upstream: "10.0.0.9:443"\n',
    ))))
    assert "which also covers *.example.com routed to '*.example.com'" in finding.message


@pytest.mark.parametrize("second_alpn", ["", "alpn: [http/1.1]\n"])
def test_no_coalescing_warning_without_h2(files: Files, ca: Issued, second_alpn: str) -> None:
    # Without `alpn:` sniui negotiates no protocol at all (see contexts.DEFAULT_ALPN),
    # so HTTP clients speak HTTP/1.1 and never coalesce.
    assert DEFAULT_ALPN == ()
    files.entry("web", issue("wild", ["*.example.com"], issuer=ca))
    loaded = files.config(routes_yaml(
        terminate("api.example.com", "api", "127.0.0.1:8080", extra=second_alpn),
        terminate("admin.example.com", "admin", "127.0.0.1:9090", extra=second_alpn),
    ))
    assert findings_of(loaded) == []


def test_no_coalescing_warning_for_the_same_upstream_or_separate_certificates(files: Files, ca: Issued) -> None:
    files.entry("web", issue("wild", ["*.example.com"], issuer=ca))
    same_upstream = files.config(routes_yaml(
        terminate("api.example.com", "api", "127.0.0.1:8080", extra=H2),
        terminate("admin.example.com", "admin", "127.0.0.1:8080", extra=H2),
    ))
    assert findings_of(same_upstream) == []
    files.entry("api", issue("api", ["api.example.com"], issuer=ca))
    files.entry("admin", issue("admin", ["admin.example.com"], issuer=ca))
    separate = files.config(routes_yaml(
        terminate("api.example.com", "api", "127.0.0.1:8080", certificate="api", extra=H2),
        terminate("admin.example.com", "admin", "127.0.0.1:9090", certificate="admin", extra=H2),
        certificates="api admin",
    ))
    assert findings_of(separate) == []


# -- never leak key material ---------------------------------------------------------------------------


def assert_no_key_material(findings: list[CertFinding], *issued: Issued) -> None:
    text = "\n".join(f"{f.message}\n{f.fix}" for f in findings)
    for item in issued:
        for line in item.key_pem().decode().splitlines()[1:-1]:
            assert line not in text


def test_findings_never_contain_key_material(files: Files, ca: Issued) -> None:
    leaf = issue("api.example.com", ["api.example.com"], issuer=ca, key=rsa.generate_private_key(65537, 1024))
    other = issue("x", ["x.example.com"], issuer=ca)
    files.write("web.pem", leaf.key_pem() + leaf.cert_pem)   # key pasted into the certificate file
    files.write("web.key", other.key_pem(), 0o644)           # wrong, world-readable key
    findings = findings_of(files.config(ONE_CERT))
    assert {f.loc[-1] for f in findings} == {"key"}
    assert_no_key_material(findings, leaf, other)


# -- server contexts -------------------------------------------------------------------------------


def handshake(server: ssl.SSLObject, client: ssl.SSLObject, client_in: ssl.MemoryBIO, client_out: ssl.MemoryBIO,
              server_in: ssl.MemoryBIO, server_out: ssl.MemoryBIO) -> None:
    """Drive both ends to completion by shuttling bytes; raise the first side's SSLError."""
    done = {"client": False, "server": False}
    for _ in range(10):   # a full TLS handshake needs about three round trips
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            # TLS 1.3: the server sees a missing client certificate only after the client's last flight.
            client.write(b"ping")
            server_in.write(client_out.read())
            assert server.read(4) == b"ping"
            return
    raise AssertionError(f"handshake did not finish: {done}")


def connect(server_context: ssl.SSLContext, client_context: ssl.SSLContext, name: str,
            session: ssl.SSLSession | None = None) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client_in, client_out, server_in, server_out = bios
    client = client_context.wrap_bio(client_in, client_out, server_hostname=name, session=session)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    handshake(server, client, client_in, client_out, server_in, server_out)
    # A reply carries TLS 1.3's session tickets to the client along with it.
    server.write(b"pong")
    client_in.write(server_out.read())
    assert client.read(4) == b"pong"
    return server, client


@pytest.fixture(scope="module")
def trust() -> trustme.CA:
    return trustme.CA()


def write_trustme(root: Path, name: str, leaf: trustme.LeafCert) -> None:
    path = root / f"{name}.pem"
    path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (root / f"{name}.key").write_bytes(leaf.private_key_pem.bytes())
    os.chmod(root / f"{name}.key", 0o600)


def client_context(trust: trustme.CA, *, alpn: list[str] | None = None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    trust.configure_trust(context)
    if alpn:
        context.set_alpn_protocols(alpn)
    if max_version:
        context.maximum_version = max_version
    return context


def presented_sans(client: ssl.SSLObject) -> list[str]:
    return [value for kind, value in client.getpeercert()["subjectAltName"] if kind == "DNS"]


TWO_TERMINATING = """\
    certificates:
      api:
        cert: api.pem
        key: api.key
      shop:
        cert: shop.pem
        key: shop.key
    routes:
      - sni: api.example.com
        mode: terminate
        certificate: api
        upstream: "127.0.0.1:8080"
      - sni: shop.example.com
        mode: terminate
        certificate: shop
        upstream: "127.0.0.1:8081"
        min_version: "1.3"
        alpn: [http/1.1]
      - sni: "*.example.net"
        upstream: "10.0.0.1:443"
"""


@pytest.fixture
def two_routes(files: Files, trust: trustme.CA):
    write_trustme(files.root, "api", trust.issue_cert("api.example.com"))
    write_trustme(files.root, "shop", trust.issue_cert("shop.example.com"))
    loaded = files.config(TWO_TERMINATING)
    contexts = ServerContexts()
    contexts.update(loaded.config)
    return loaded.config, RouteTable(loaded.config), contexts


def test_each_terminating_route_presents_its_own_certificate(two_routes, trust: trustme.CA) -> None:
    config, table, contexts = two_routes
    assert validate_certificates(config) == []
    assert len(contexts) == 2
    for name in ("api.example.com", "shop.example.com"):
        server, client = connect(contexts.select_context(table.match(name)), client_context(trust), name)
        assert presented_sans(client) == [name]


def test_route_alpn_and_default_alpn(two_routes, trust: trustme.CA) -> None:
    _, table, contexts = two_routes
    offering = client_context(trust, alpn=["h2", "http/1.1"])
    _, client = connect(contexts.select_context(table.match("shop.example.com")), offering, "shop.example.com")
    assert client.selected_alpn_protocol() == "http/1.1"
    _, client = connect(contexts.select_context(table.match("api.example.com")), offering, "api.example.com")
    assert client.selected_alpn_protocol() is None   # no alpn: → no protocol negotiated (DEFAULT_ALPN)


def test_route_min_version(two_routes, trust: trustme.CA) -> None:
    _, table, contexts = two_routes
    old_client = client_context(trust, max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        connect(contexts.select_context(table.match("shop.example.com")), old_client, "shop.example.com")
    _, client = connect(contexts.select_context(table.match("api.example.com")), old_client, "api.example.com")
    assert client.version() == "TLSv1.2"


def test_select_context_refuses_passthrough(two_routes) -> None:
    _, table, contexts = two_routes
    with pytest.raises(ValueError, match="does not terminate TLS"):
        contexts.select_context(table.match("www.example.net"))


def test_client_ca_requires_a_client_certificate_from_that_ca(files: Files, trust: trustme.CA) -> None:
    clients_ca, stranger_ca = trustme.CA(), trustme.CA()
    write_trustme(files.root, "api", trust.issue_cert("api.example.com"))
    clients_ca.cert_pem.write_to_path(str(files.root / "clients.pem"))
    loaded = files.config(routes_yaml(terminate("api.example.com", "api", certificate="api", extra="client_ca: clients.pem\n"),
                                      certificates="api"))
    assert validate_certificates(loaded.config) == []
    contexts = ServerContexts()
    contexts.update(loaded.config)
    server_context = contexts.select_context(RouteTable(loaded.config).match("api.example.com"))

    with pytest.raises(ssl.SSLError, match="PEER_DID_NOT_RETURN_A_CERTIFICATE|certificate required"):
        connect(server_context, client_context(trust), "api.example.com")

    stranger = client_context(trust)
    stranger_ca.issue_cert("client@example.com").configure_cert(stranger)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED|unknown ca"):
        connect(server_context, stranger, "api.example.com")

    member = client_context(trust)
    clients_ca.issue_cert("client@example.com", common_name="alice").configure_cert(member)
    server, client = connect(server_context, member, "api.example.com")
    assert ((("commonName", "alice"),) in server.getpeercert()["subject"])


def test_contexts_are_reused_until_a_file_changes(files: Files, trust: trustme.CA) -> None:
    write_trustme(files.root, "api", trust.issue_cert("api.example.com"))
    loaded = files.config(routes_yaml(terminate("api.example.com", "api", certificate="api"), certificates="api"))
    table = RouteTable(loaded.config)
    contexts = ServerContexts()
    contexts.update(loaded.config)
    first = contexts.select_context(table.match("api.example.com"))

    client = client_context(trust)
    _, before = connect(first, client, "api.example.com")
    contexts.update(files.config(routes_yaml(terminate("api.example.com", "api", certificate="api"), certificates="api")).config)
    assert contexts.select_context(table.match("api.example.com")) is first
    _, after = connect(contexts.select_context(table.match("api.example.com")), client, "api.example.com", before.session)
    assert after.session_reused   # a reload does not cost clients their sessions

    # A renewal: a new certificate with another name lands in the same path.
    write_trustme(files.root, "api", trust.issue_cert("api.example.com", "renewed.example.com"))
    contexts.update(loaded.config)
    renewed = contexts.select_context(table.match("api.example.com"))
    assert renewed is not first
    _, client = connect(renewed, client_context(trust), "api.example.com")
    assert presented_sans(client) == ["api.example.com", "renewed.example.com"]

    # A broken renewal is refused as a whole and the previous context keeps serving.
    (files.root / "api.key").write_bytes(trust.issue_cert("other.example.com").private_key_pem.bytes())
    with pytest.raises(ContextError, match="route 'api'.*KEY_VALUES_MISMATCH|route 'api'.*key values mismatch"):
        contexts.update(loaded.config)
    assert contexts.select_context(table.match("api.example.com")) is renewed


def test_encrypted_key_fails_instead_of_prompting(files: Files) -> None:
    leaf = issue("api.example.com", ["api.example.com"], key=rsa.generate_private_key(65537, 2048))
    files.entry("web", leaf, key=leaf.key_pem(b"secret"))
    with pytest.raises(ContextError, match="encrypted"):
        build_server_context(ContextSpec(files.root / "web.pem", files.root / "web.key"))
