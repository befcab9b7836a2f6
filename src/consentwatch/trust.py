"""`consentwatch trust`: put this install's CA where each browser looks for trusted CAs, or take it out again.

On Linux, Chromium and Chrome read the user's NSS database `~/.pki/nssdb` (it does not exist until Chromium has
run once: we create it, empty password, as Chromium would), and every Firefox profile has its own NSS database
(`cert9.db` in the profile directory, profiles listed in `profiles.ini`). Both are changed with NSS's `certutil`
(package libnss3-tools). A browser that is running reads the database when it starts: a certificate imported
while it runs is trusted only after a restart.

One consentwatch CA per database: trusting replaces any other consentwatch CA found there (a renewed CA takes the
old one's place), `--remove` takes out every consentwatch CA. Other certificates are never touched.
"""

from __future__ import annotations

import configparser
import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from .ca import CA_DIR, CA_NAME, CaStatus, ensure_ca
from .rules.store import RuleStore

NICKNAME = "consentwatch local CA"
TRUST_FLAGS = "C,,"  # a CA trusted to issue server certificates (TLS); nothing for mail or code signing
CERTUTIL_TIMEOUT = 60
BROWSERS = ("chromium", "firefox", "all")
MAX_DELETE = 100  # certutil -D removes one certificate per call


class TrustError(Exception):
    """One line for the user (exit 2)."""


@dataclass
class NssDb:
    browser: str  # "Chromium/Chrome" or "Firefox"
    label: str  # how the user knows it: the path, or the Firefox profile's name
    path: Path
    may_create: bool  # created when missing (Chromium's does not exist before its first run)

    @property
    def exists(self) -> bool:
        return (self.path / "cert9.db").exists()


@dataclass
class Outcome:
    db: NssDb
    action: str  # "added", "already", "created+added", "removed", "absent", "skipped", "failed"
    detail: str = ""
    removed: int = 0


@dataclass
class Report:
    ca: CaStatus
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.action == "failed" for o in self.outcomes)


# -- where the browsers look --------------------------------------------------------------------------------------

def chromium_dbs(home: Path) -> list[NssDb]:
    """Chromium and Chrome (Debian, Ubuntu, Fedora, Arch packages and Google's): one shared NSS db per user;
    the snap package keeps its own under ~/snap."""
    dbs = [NssDb("Chromium/Chrome", _tilde(home / ".pki" / "nssdb", home), home / ".pki" / "nssdb", True)]
    snap = home / "snap" / "chromium" / "current" / ".pki" / "nssdb"
    if snap.is_dir():
        dbs.append(NssDb("Chromium (snap)", _tilde(snap, home), snap, True))
    return dbs


def firefox_roots(home: Path) -> list[Path]:
    """Directories that hold a profiles.ini: Firefox and Debian's firefox-esr (~/.mozilla/firefox, ESR profiles
    are named *.default-esr there), newer Firefox's XDG location, the snap and the Flatpak."""
    return [home / ".mozilla" / "firefox", home / ".mozilla" / "firefox-esr", home / ".config" / "mozilla" / "firefox",
            home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
            home / ".var" / "app" / "org.mozilla.firefox" / ".mozilla" / "firefox"]


def firefox_profiles(home: Path) -> list[tuple[str, Path]]:
    """(name, directory) of every Firefox profile found: those profiles.ini lists, and directories beside it that
    hold a certificate database without being listed (a profile made with `firefox -profile DIR` there)."""
    found: dict[Path, tuple[str, Path]] = {}
    for root in firefox_roots(home):
        ini = root / "profiles.ini"
        if ini.is_file():
            parser = configparser.RawConfigParser(strict=False)
            try:
                parser.read(ini, encoding="utf-8")
            except (configparser.Error, UnicodeDecodeError, OSError):
                parser = configparser.RawConfigParser()
            for section in parser.sections():
                if not section.startswith("Profile") or not parser.has_option(section, "Path"):
                    continue
                raw = parser.get(section, "Path")
                relative = parser.get(section, "IsRelative", fallback="1").strip() == "1"
                path = (root / raw) if relative else Path(raw)
                if path.is_dir():
                    name = parser.get(section, "Name", fallback=path.name)
                    found.setdefault(path.resolve(), (name, path))
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if child.is_dir() and (child / "cert9.db").exists():
                    found.setdefault(child.resolve(), (child.name, child))
    return sorted(found.values(), key=lambda item: str(item[1]))


def firefox_dbs(home: Path, extra: list[Path] | None = None) -> list[NssDb]:
    dbs = [NssDb("Firefox", f"profile {name} ({_tilde(path, home)})", path, True)
           for name, path in firefox_profiles(home)]
    for path in extra or []:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise TrustError(f"no Firefox profile directory at {path}")
        if all(d.path.resolve() != path.resolve() for d in dbs):
            dbs.append(NssDb("Firefox", f"profile {path.name} ({_tilde(path, home)})", path, True))
    return dbs


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


# -- certutil -----------------------------------------------------------------------------------------------------

def find_certutil() -> str:
    exe = shutil.which("certutil")
    if not exe:
        raise TrustError("certutil not found: install it (Debian/Ubuntu: sudo apt install libnss3-tools; "
                         "Fedora: sudo dnf install nss-tools; Arch: sudo pacman -S nss), then run this again")
    return exe


class Certutil:
    def __init__(self, exe: str):
        self.exe = exe

    def run(self, db: NssDb, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.exe, "-d", f"sql:{db.path}", *args]
        try:
            # stdin closed: a database with a primary password fails instead of waiting for one
            p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=CERTUTIL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise TrustError(f"certutil did not finish for {db.label}") from None
        except OSError as e:
            raise TrustError(f"cannot run certutil: {e.strerror or e}") from None
        if check and p.returncode != 0:
            raise TrustError(f"certutil failed for {db.label}: {_first_line(p.stderr or p.stdout)}")
        return p

    def create(self, db: NssDb) -> None:
        try:
            db.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise TrustError(f"cannot create {db.path}: {e.strerror or e}") from None
        self.run(db, "-N", "--empty-password")

    def nicknames(self, db: NssDb) -> list[tuple[str, str]]:
        """(nickname, trust attributes) of every certificate in the database."""
        return parse_listing(self.run(db, "-L").stdout)

    def certificates(self, db: NssDb, nickname: str) -> list[x509.Certificate]:
        p = self.run(db, "-L", "-n", nickname, "-a", check=False)
        if p.returncode != 0:
            return []
        try:
            return x509.load_pem_x509_certificates(p.stdout.encode())
        except ValueError:
            return []

    def ours(self, db: NssDb) -> list[tuple[str, str, list[x509.Certificate]]]:
        """(nickname, trust, certificates) for every nickname that holds a consentwatch CA (ours by subject,
        whatever nickname the user gave it when importing it by hand)."""
        found = []
        for name, trust in self.nicknames(db):
            certs = self.certificates(db, name)
            if any(is_consentwatch_ca(c) for c in certs):
                found.append((name, trust, certs))
        return found

    def add(self, db: NssDb, cert_path: Path) -> None:
        self.run(db, "-A", "-t", TRUST_FLAGS, "-n", NICKNAME, "-i", str(cert_path))

    def delete_all(self, db: NssDb, nickname: str) -> int:
        removed = 0
        while removed < MAX_DELETE and self.run(db, "-D", "-n", nickname, check=False).returncode == 0:
            removed += 1
        return removed


def parse_listing(out: str) -> list[tuple[str, str]]:
    """`certutil -L` output -> (nickname, trust attributes). The two header lines end with "SSL,S/MIME,JAR/XPI"."""
    lines = out.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if "SSL,S/MIME,JAR/XPI" in line), 0)
    rows = []
    for line in lines[start:]:
        if line.strip():
            name, _, trust = line.rstrip().rpartition(" ")
            rows.append((name.strip(), trust))
    return rows


def is_consentwatch_ca(cert: x509.Certificate) -> bool:
    org = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return org == ["consentwatch"] and any(str(c).startswith("consentwatch") for c in cn)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"


# -- what the command does --------------------------------------------------------------------------------------------

def install_ca(data_dir: Path) -> CaStatus:
    """The install's CA, made now if there is none: the same call `consentwatch run` makes, with the same rules."""
    return ensure_ca(Path(data_dir) / CA_DIR, RuleStore(Path(data_dir)).load().host_patterns())


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def databases(browser: str, home: Path, firefox_profile_dirs: list[Path] | None = None) -> tuple[list[NssDb], list[str]]:
    """The databases to change and notes about what was not found."""
    dbs: list[NssDb] = []
    notes: list[str] = []
    if browser in ("chromium", "all"):
        dbs += chromium_dbs(home)
    if browser in ("firefox", "all"):
        ff = firefox_dbs(home, firefox_profile_dirs)
        if not ff:
            notes.append("Firefox: no profile found (start Firefox once, quit it, then run this again)")
        dbs += ff
    return dbs, notes


def trust(data_dir: Path, browser: str = "all", home: Path | None = None,
          firefox_profile_dirs: list[Path] | None = None) -> Report:
    home = Path(home or Path.home())
    certutil = Certutil(find_certutil())
    status = install_ca(data_dir)
    der = x509.load_pem_x509_certificate(status.cert_path.read_bytes()).public_bytes(Encoding.DER)
    dbs, notes = databases(browser, home, firefox_profile_dirs)
    report = Report(status, notes=notes)
    for db in dbs:
        if not db.exists and (db.path / "cert8.db").exists():
            report.outcomes.append(Outcome(db, "skipped", "an old-format database (cert8.db): start Firefox once "
                                                          "with this profile, quit it, then run this again"))
            continue
        try:
            created = False
            if not db.exists:
                certutil.create(db)
                created = True
            current = certutil.ours(db)
            already = any(t.startswith("C") and any(c.public_bytes(Encoding.DER) == der for c in certs)
                          for _, t, certs in current)
            if already and len(current) == 1 and len(current[0][2]) == 1:
                report.outcomes.append(Outcome(db, "already"))
                continue
            removed = sum(certutil.delete_all(db, name) for name, _, _ in current)
            certutil.add(db, status.cert_path)
            report.outcomes.append(Outcome(db, "created+added" if created else "added", removed=removed))
        except TrustError as e:
            report.outcomes.append(Outcome(db, "failed", str(e) + _by_hand(db, status.cert_path)))
    return report


def untrust(browser: str = "all", home: Path | None = None, firefox_profile_dirs: list[Path] | None = None) -> Report:
    """Take every consentwatch CA out of the browsers' databases. The CA files in the data dir stay."""
    home = Path(home or Path.home())
    certutil = Certutil(find_certutil())
    dbs, notes = databases(browser, home, firefox_profile_dirs)
    report = Report(CaStatus(Path(), []), notes=notes)
    for db in dbs:
        if not db.exists:
            report.outcomes.append(Outcome(db, "absent"))
            continue
        try:
            removed = sum(certutil.delete_all(db, name) for name, _, _ in certutil.ours(db))
            report.outcomes.append(Outcome(db, "removed" if removed else "absent", removed=removed))
        except TrustError as e:
            report.outcomes.append(Outcome(db, "failed", str(e)))
    return report


def _by_hand(db: NssDb, cert_path: Path) -> str:
    # a Firefox primary password, a read-only profile: the user can still do it, and is told exactly how
    return (f"; by hand: certutil -d sql:{db.path} -A -t {TRUST_FLAGS} -n '{NICKNAME}' -i {cert_path}"
            " (it asks for the profile's primary password if it has one)")


# -- other systems: the exact commands (run by the user; not automated here) ------------------------------------------

def other_system_commands(system: str, cert_path: Path, remove: bool) -> list[str]:
    subject = CA_NAME
    if system == "darwin":
        if remove:
            return [f'security delete-certificate -c "{subject}" ~/Library/Keychains/login.keychain-db']
        return [f"security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db {cert_path}"]
    if system == "win32":
        if remove:
            return [f'certutil -user -delstore Root "{subject}"']
        return [f"certutil -user -addstore Root {cert_path}"]
    return []

