"""A per-install CA that cannot hurt the user: X.509 Name Constraints permit only the rule database's domains.

mitmproxy's default CA may sign for any name; a browser that trusts it trusts every certificate made with
its key. This CA is created by `consentwatch run` in the data dir (`ca/`, key mode 0600) and its Name
Constraints extension (critical) permits the DNS names of the rule domains and their subdomains only, and
excludes every IP address. A browser that enforces name constraints for a locally trusted root (Chromium,
Firefox via NSS) refuses any certificate it signs for another site, so even a stolen key cannot
impersonate a bank. mitmproxy reads it from its `confdir` like its own CA (same file names).

When a rule pack adds a domain the CA does not cover, the CA must be renewed (`consentwatch run --renew-ca`)
and the new certificate trusted in place of the old one: `uncovered()` says which domains, `ensure_ca()`
renews on request.

Besides the rule domains the CA permits `consentwatch.invalid`, a name that cannot exist in DNS (RFC 6761): the
proxy answers `selftest.consentwatch.invalid` itself (selftest.py), so a browser can prove that it trusts this CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mitmproxy.certs import DEFAULT_DHPARAM

from .store.atomic import atomic_write

log = logging.getLogger(__name__)

CA_DIR = "ca"  # in the data dir; `consentwatch run` uses it as mitmproxy's confdir
BASENAME = "mitmproxy"  # mitmproxy's file names, so `confdir` finds them
CA_PEM = f"{BASENAME}-ca.pem"  # key + certificate (0600)
CA_CERT = f"{BASENAME}-ca-cert.pem"  # the certificate, as mitmproxy names it
PUBLIC_CERT = "consentwatch-ca-cert.pem"  # the same certificate, under the name users are told to trust
CA_DIR = "ca"  # under the data dir
CA_NAME = "consentwatch local CA (rule domains only)"  # the subject's common name, as trust stores list it
OWN_DOMAIN = "consentwatch.invalid"  # never a real site (RFC 6761)
SELFTEST_HOST = f"selftest.{OWN_DOMAIN}"  # answered by the proxy itself (selftest.py), routed by the PAC
SELFTEST_URL = f"https://{SELFTEST_HOST}/"
VALIDITY = dt.timedelta(days=3 * 365)
KEY_SIZE = 2048
# No permitted subtree for IP addresses means "any IP": exclude them all explicitly.
EXCLUDED = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]


class CaError(Exception):
    """The CA cannot be read or written. One line for the user."""


@dataclass
class CaStatus:
    cert_path: Path
    permitted: list[str]  # DNS subtrees the CA may sign for
    created: bool = False  # made now (new install, --renew-ca, or an old unconstrained CA replaced)
    replaced_unconstrained: bool = False
    uncovered: list[str] = field(default_factory=list)  # rule domains outside `permitted`: renew needed
    replaced: str | None = None  # why a CA that was there is replaced by a new one (the user must trust it again)

    def trust_again(self) -> str | None:
        """The line to tell the user when the certificate they trusted is not the one in use any more."""
        if not self.replaced:
            return None
        return (f"This is a NEW CA certificate ({self.replaced}): trust it again (below; `consentwatch trust` also "
                "removes the old one); until you do, the rule sites' pages will not load through the proxy.")


def wanted_domains(host_patterns: list[str]) -> list[str]:
    """Rule hosts -> the fewest DNS subtrees that cover them ("*.substack.com" -> "substack.com";
    "www.linkedin.com" is covered by "linkedin.com" when both are rule hosts)."""
    names = sorted({h.lower().rstrip(".").removeprefix("*.") for h in host_patterns if h.strip("*.")},
                   key=lambda n: (n.count("."), n))
    kept: list[str] = []
    for n in names:
        if not any(covers(k, n) for k in kept):
            kept.append(n)
    return sorted(kept)


def covers(subtree: str, name: str) -> bool:
    """RFC 5280 DNS name constraint: the subtree itself and any name below it."""
    subtree, name = subtree.lower().lstrip("."), name.lower().removeprefix("*.")
    return name == subtree or name.endswith("." + subtree)


def ca_domains(host_patterns: list[str]) -> list[str]:
    """What a new CA permits: the rule domains and our own (the self-test host)."""
    return sorted(set(wanted_domains(host_patterns)) | {OWN_DOMAIN})


def uncovered(permitted: list[str], host_patterns: list[str]) -> list[str]:
    return [d for d in wanted_domains(host_patterns) if not any(covers(p, d) for p in permitted)]


def permitted_of(cert: x509.Certificate) -> list[str] | None:
    """The permitted DNS subtrees of a CA certificate; None when it has no name constraints at all."""
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return sorted(str(g.value) for g in (nc.permitted_subtrees or []) if isinstance(g, x509.DNSName))


def create_ca(confdir: Path, domains: list[str]) -> x509.Certificate:
    """Write a new name-constrained CA into `confdir` (each file replaced atomically; the key 0600)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "consentwatch"),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    permitted = [x509.DNSName(d) for d in domains] or [x509.DNSName("invalid")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=EXCLUDED), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    confdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # the public files first, the key+cert mitmproxy loads last: a crash in between leaves the old CA in force
    atomic_write(confdir / CA_CERT, cert_pem, 0o644)
    atomic_write(confdir / PUBLIC_CERT, cert_pem, 0o644)
    atomic_write(confdir / f"{BASENAME}-ca-cert.cer", cert_pem, 0o644)
    atomic_write(confdir / f"{BASENAME}-ca-cert.p12",
                 pkcs12.serialize_key_and_certificates(b"consentwatch", None, cert, None,
                                                       serialization.NoEncryption()), 0o644)
    atomic_write(confdir / f"{BASENAME}-ca.p12",
                 pkcs12.serialize_key_and_certificates(b"consentwatch", key, cert, None,
                                                       serialization.NoEncryption()), 0o600)
    if not (confdir / f"{BASENAME}-dhparam.pem").exists():
        atomic_write(confdir / f"{BASENAME}-dhparam.pem", DEFAULT_DHPARAM, 0o644)
    atomic_write(confdir / CA_PEM, key_pem + cert_pem, 0o600)
    return cert


def read_ca(confdir: Path) -> x509.Certificate | None:
    try:
        raw = (confdir / CA_PEM).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CaError(f"cannot read {confdir / CA_PEM}: {e.strerror or e}") from None
    try:
        serialization.load_pem_private_key(raw, None)
        return x509.load_pem_x509_certificates(raw)[0]
    except (ValueError, TypeError, IndexError):
        return None  # unreadable: made anew below


def ensure_ca(confdir: Path, host_patterns: list[str], renew: bool = False) -> CaStatus:
    """The install's CA: created if missing, unreadable or unconstrained (or when `renew`), else kept as is."""
    confdir = Path(confdir)
    try:
        existed = (confdir / CA_PEM).exists()
        cert = None if renew else read_ca(confdir)
        replaced = False
        why = "renewed on request" if renew and existed else None
        if cert is None and existed and why is None:
            why = "the old one could not be read"
        if cert is not None and permitted_of(cert) is None:
            replaced = True  # mitmproxy's all-powerful default CA from an older install: never keep it
            why = "it replaces an unrestricted mitmproxy CA, which you should remove"
            cert = None
        if cert is not None and cert.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1):
            why = "the old one expired"
            cert = None  # expired (or about to): a new one, to be trusted again
        created = cert is None
        if created:
            cert = create_ca(confdir, ca_domains(host_patterns))
            mode = os.stat(confdir / CA_PEM).st_mode & 0o777
            if mode != 0o600:
                raise CaError(f"{confdir / CA_PEM} is mode {mode:o}, not 600")
        public = cert.public_bytes(serialization.Encoding.PEM)
        if not created and _read_or_none(confdir / PUBLIC_CERT) != public:
            atomic_write(confdir / PUBLIC_CERT, public, 0o644)
    except OSError as e:
        raise CaError(f"cannot write the CA in {confdir}: {e.strerror or e}") from None
    permitted = permitted_of(cert) or []
    # a CA made before the self-test existed lacks OWN_DOMAIN: reported like a rule domain it lacks
    status = CaStatus(confdir / PUBLIC_CERT, permitted, created, replaced,
                      uncovered(permitted, [*host_patterns, OWN_DOMAIN]), why if created else None)
    if status.replaced:
        log.warning("new CA certificate %s (%s): trust it again in your browser and remove the old one",
                    status.cert_path, status.replaced)
    return status


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def coverage_note(data_dir: Path, host_patterns: list[str]) -> str:
    """What new rule hosts (an imported pack) mean for the install's CA, in one or two sentences for the user."""
    confdir = Path(data_dir) / CA_DIR
    try:
        cert = read_ca(confdir)
    except Exception:  # noqa: BLE001 - unreadable: say what we would say without one
        cert = None
    if cert is None:
        return "The new hosts are intercepted from the next `consentwatch run` (it makes a CA that covers them)."
    permitted = permitted_of(cert)
    missing = wanted_domains(host_patterns) if permitted is None else uncovered(permitted, host_patterns)
    if not missing:
        return "Your CA already covers the new hosts: nothing to renew."
    return (f"Your CA does not cover {', '.join(missing)}: until it is renewed and re-trusted those hosts are "
            f"tunnelled, not inspected. To renew it, {renew_advice(data_dir)}.")


def renew_advice(data_dir: Path) -> str:
    cert = Path(data_dir) / CA_DIR / PUBLIC_CERT
    return (f"stop `consentwatch run` and start it again with `consentwatch run --renew-ca`, then trust the new CA "
            f"certificate ({cert}) in your browser and remove the old one")
