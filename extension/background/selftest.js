/* The self-test: open the self-test page (selftest.consentwatch.invalid, the address /v1/health gives) as a platform page
 * is opened. The proxy answers it itself, so a response proves that the PAC sent it to the proxy AND that the
 * browser trusts consentwatch's CA. A failed fetch does not say why (fetch hides the net:: error), so the proxy is
 * asked: if it counted a refused TLS handshake for the self-test host, the browser reached it and refused the
 * certificate; if not, the request never reached it (sent DIRECT: the name cannot resolve). */

import { SELFTEST_HOST } from './status.js';

export const SELFTEST_TIMEOUT_MS = 8_000;
// The browser's alert and the proxy's note of it race the fetch's rejection: ask the proxy twice before
// concluding that it saw nothing.
export const RECHECK_DELAY_MS = 600;

/** Is this the self-test address we expect (https, the .invalid host, the root)? Anything else is not fetched. */
export function selftestUrlOk(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && u.hostname === SELFTEST_HOST && u.pathname === '/' && !u.search;
  } catch {
    return false;
  }
}

export class SelfTest {
  /** fetchImpl: fetch; refusals: async () => {host: count} (from /v1/health); now: () => ms. */
  constructor({ fetchImpl = (...a) => globalThis.fetch(...a), refusals, now = () => Date.now(),
    sleep = (ms) => new Promise((r) => setTimeout(r, ms)), timeoutMs = SELFTEST_TIMEOUT_MS }) {
    Object.assign(this, { fetchImpl, refusals, now, sleep, timeoutMs });
    this.running = null;
  }

  /** {outcome: 'ok' | 'untrusted' | 'bypassed' | 'error', at, detail}. One run at a time; callers share it. */
  run(url) {
    if (!this.running) this.running = this._run(url).finally(() => { this.running = null; });
    return this.running;
  }

  async _run(url) {
    if (!selftestUrlOk(url)) return { outcome: 'error', at: this.now(), detail: 'consentwatch gave no usable self-test address' };
    const before = await this._refused();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    let failure;
    try {
      // no-cors: the answer is opaque (no host permission needed), and getting one at all is the proof
      const res = await this.fetchImpl(url, { mode: 'no-cors', cache: 'no-store', credentials: 'omit', signal: ctl.signal });
      if (res && (res.type === 'opaque' || res.ok)) return { outcome: 'ok', at: this.now(), detail: null };
      return { outcome: 'error', at: this.now(), detail: `the self-test page answered ${res && res.status}` };
    } catch (e) {
      failure = ctl.signal.aborted ? 'no answer in time' : String((e && e.message) || e);
    } finally {
      clearTimeout(timer);
    }
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (attempt) await this.sleep(RECHECK_DELAY_MS);
      const after = await this._refused();
      if (after === null) return { outcome: 'error', at: this.now(), detail: 'consentwatch stopped answering during the self-test' };
      // only a refusal counted during this attempt: one from before (the count lasts 10 minutes) says nothing about
      // this request, which may never have reached the proxy (routing switched off since)
      if ((after[SELFTEST_HOST] || 0) > ((before && before[SELFTEST_HOST]) || 0)) {
        return { outcome: 'untrusted', at: this.now(), detail: failure };
      }
    }
    return { outcome: 'bypassed', at: this.now(), detail: failure };
  }

  async _refused() {
    try {
      const got = await this.refusals();
      return got && typeof got === 'object' ? got : {};
    } catch {
      return null;
    }
  }
}
