"""Debian's firefox-esr with extension/ loaded by `web-ext run` (a temporary add-on, as a developer loads it),
driven over Marionette (marionette_driver; Playwright's own Firefox cannot be downloaded here).

The profile is fresh for each launch and prepared before Firefox starts: the consentwatch CA is put in its own
certificate database by the real `consentwatch trust --browser firefox --firefox-profile DIR`, so recorded HTTPS
pages load through the proxy with no certificate exception. Nothing leaves the machine: every DNS answer is
127.0.0.1 (network.dns.native-is-localhost) and Firefox's own background traffic is switched off by prefs.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
from pathlib import Path

from .browser_support import EXT_DIR, consentwatch_bin, missing, wait_until

ADDON_ID = "consentwatch@consentwatch.invalid"  # manifest.json browser_specific_settings.gecko.id
WEB_EXT = EXT_DIR / "node_modules" / ".bin" / "web-ext"

# Given to Firefox with `web-ext run --pref` (Marionette adds its own recommended automation prefs on top).
PREFS: dict[str, object] = {
    "marionette.port": 0,  # any free port; Firefox writes it to MarionetteActivePort in the profile
    # no DNS: a host the PAC does not send to the proxy goes DIRECT to 127.0.0.1 and fails there
    "network.dns.native-is-localhost": True,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    # no phoning home
    "app.update.disabledForTesting": True,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "services.settings.server": "data:,#remote-settings-disabled/v1",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.region.update.enabled": False,
    "browser.region.network.url": "",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "dom.push.connection.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "intl.locale.requested": "en-US",
}


def find_firefox() -> str | None:
    for cand in (os.environ.get("CONSENTWATCH_FIREFOX"), "/usr/bin/firefox-esr", shutil.which("firefox-esr"),
                 shutil.which("firefox")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def firefox_prerequisites() -> str:
    """The Firefox binary, or a missing prerequisite (fails under CI=true, skips elsewhere)."""
    firefox = find_firefox()
    if not firefox:
        missing("firefox-esr not found (apt-get install firefox-esr, or `make browser`)")
    if not (WEB_EXT.exists() and shutil.which("node")):
        missing(f"web-ext not found at {WEB_EXT} (cd extension && npm install, or `make browser`)")
    if not shutil.which("certutil"):
        missing("certutil not found (apt-get install libnss3-tools, or `make browser`)")
    try:
        import marionette_driver  # noqa: F401
    except ImportError:
        missing("marionette_driver is not installed (make install)")
    return firefox


def trust_ca(profile: Path, home: Path, data_dir: Path) -> str:
    """`consentwatch trust` for this one profile, with HOME elsewhere so no real profile is touched."""
    out = subprocess.run(
        [str(consentwatch_bin()), "trust", "--browser", "firefox", "--firefox-profile", str(profile),
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)})
    assert out.returncode == 0 and (profile / "cert9.db").exists(), \
        f"consentwatch trust failed:\n{out.stdout}{out.stderr}"
    return out.stdout


class ExtFirefox:
    """firefox-esr started by `web-ext run` on a fresh profile, and a Marionette session on it."""

    def __init__(self, firefox: str, profile: Path, home: Path, log_path: Path):
        self.firefox = firefox
        self.profile = profile
        self.home = home
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.m = None
        self.base = ""  # moz-extension://UUID/

    def start(self, timeout: float = 90.0) -> "ExtFirefox":
        from marionette_driver.marionette import Marionette

        cmd = [str(WEB_EXT), "run", "--source-dir", str(EXT_DIR), "--firefox", self.firefox,
               "--firefox-profile", str(self.profile), "--keep-profile-changes", "--no-reload", "--no-input",
               "--no-config-discovery", "--arg=-marionette", "--arg=-remote-allow-system-access",
               *(f"--pref={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in PREFS.items())]
        env = {**os.environ, "HOME": str(self.home), "MOZ_HEADLESS": "1", "NO_UPDATE_NOTIFIER": "1",
               "MOZ_CRASHREPORTER_DISABLE": "1"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._log.write(f"\n$ {' '.join(cmd)}\n".encode())
        self._log.flush()
        # its own process group: web-ext's Firefox goes with it when the test stops it
        self.proc = subprocess.Popen(cmd, cwd=EXT_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "MarionetteActivePort"

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"web-ext run exited with {self.proc.returncode}:\n{self.log_tail()}")
            return port_file.exists() and port_file.read_text().strip()

        marionette_port = int(wait_until(port, timeout, 0.2, what="Firefox's Marionette port"))
        self.m = Marionette(host="127.0.0.1", port=marionette_port)
        self.m.start_session()
        # web-ext installs the add-on over its debugging protocol once Firefox is up: wait for it to be running
        self.base = wait_until(lambda: self.chrome(
            "const p = WebExtensionPolicy.getByID(arguments[0]); return p && p.extension ? p.getURL('') : null;",
            ADDON_ID), timeout, 0.2, what=f"the add-on {ADDON_ID} to run (web-ext log: {self.log_path})")
        self.m.set_window_rect(width=1100, height=900)
        return self

    def stop(self) -> None:
        if self.m is not None:
            try:
                self.m.delete_session()
            except Exception:  # noqa: BLE001 (Firefox already gone)
                pass
            self.m = None
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ------------------------------------------------------------------------------------------ hands

    def chrome(self, script: str, *args):
        """Runs script with chrome privileges (the browser's own code: add-on policies, certificates)."""
        self.m.set_context("chrome")
        try:
            return self.m.execute_script(script, script_args=args)
        finally:
            self.m.set_context("content")

    def ext_call(self, expr: str, *args):
        """Awaits an expression in the current extension page (its `browser` global), e.g.
        "browser.action.getBadgeText({})". A rejection comes back as {"error": message}."""
        return self.m.execute_async_script(
            "const done = arguments[arguments.length - 1]; const args = Array.from(arguments).slice(0, -1);"
            f"Promise.resolve().then(() => {expr}).then((v) => done({{ value: v === undefined ? null : v }}),"
            " (e) => done({ error: String(e && e.message || e) }));",
            script_args=args, sandbox=None, new_sandbox=False)

    def open_ext_page(self, path: str) -> None:
        self.m.navigate(self.base + path)

    def look(self, css: str) -> dict | None:
        """What the first element matching css shows now, read in one go (pages redraw: an element handle held
        across a redraw goes stale): its text (an open shadow root's too), whether it is shown, checked,
        disabled, and its data-platform. None when there is no such element."""
        return self.m.execute_script("""
            const el = document.querySelector(arguments[0]);
            if (!el) return null;
            const root = el.shadowRoot;
            const text = root ? Array.from(root.children).map((c) => c.innerText || '').join('\\n') : el.innerText;
            const shown = Boolean(el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
            return { text: text.trim(), shown, checked: Boolean(el.checked), disabled: Boolean(el.disabled),
                     platform: el.getAttribute('data-platform') };""", script_args=[css])

    def text(self, css: str) -> str:
        got = self.look(css)
        return got["text"] if got else ""

    def click(self, css: str) -> None:
        """Clicks the element once it stands still. The popup draws in steps (the warnings arrive after the
        switches), and Marionette clicks at where the element was: a click while the layout moves lands on
        whatever is there by then (seen on a loaded machine: the routing switch, pushed down by a warning card,
        never got the click)."""
        from marionette_driver.by import By

        def where():
            return self.m.execute_script(
                "const el = document.querySelector(arguments[0]); if (!el) return null;"
                "const r = el.getBoundingClientRect();"
                "return [r.x, r.y, r.width, r.height, document.documentElement.scrollHeight];", script_args=[css])

        last: list = [None]

        def still():
            now = where()
            steady, last[0] = now is not None and now == last[0], now
            return steady
        wait_until(still, 30, interval=0.25, what=f"{css} to stand still")
        self.m.find_element(By.CSS_SELECTOR, css).click()

    def wait_css(self, css: str, timeout: float = 15.0, displayed: bool = True):
        from marionette_driver.by import By

        def found():
            els = self.m.find_elements(By.CSS_SELECTOR, css)
            return next((e for e in els if not displayed or e.is_displayed()), None)
        return wait_until(found, timeout, what=f"{css} on {self.m.get_url()}")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.m.screenshot(full=True)))

