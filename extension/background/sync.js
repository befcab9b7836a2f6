/* Staying in step with the API: health, the active warnings over REST, the WebSocket for what happens next,
 * the rules when their version changes, the routing switch. Reconnects with backoff when consentwatch is away. */

import { cleanWarnings, applyEvent } from './state.js';

/** The stored settings, checked: {apiBase, apiBaseError, token}. */
export async function readSettings(local, CW) {
  const got = await local.get(['apiBase', 'token']);
  const base = CW.normalizeApiBase(got.apiBase);
  const token = CW.normalizeToken(got.token);
  return {
    apiBase: base.ok ? base.value : CW.DEFAULT_API_BASE,
    apiBaseError: base.ok ? null : base.error,
    token: token.ok ? token.value : '',
  };
}

export class Sync {
  constructor({ state, getSettings, apiFetch, socket, backoff, sanitize, syncRules = async () => {},
    syncRouting = async () => {}, afterSync = async () => {}, setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (t) => clearTimeout(t) }) {
    Object.assign(this, { state, getSettings, apiFetch, socket, backoff, sanitize, syncRules, syncRouting, afterSync, setTimer, clearTimer });
    this.refreshing = null;
    this.again = false;
    this.reconnectTimer = null;
    // consentwatch went away (its socket closed, or health failed) since the PAC was last applied: Chromium may
    // have marked its proxy bad and sends the platforms DIRECT for ~5 minutes, until the proxy setting changes.
    // A worker that starts does not know what happened while it was stopped: it applies the PAC once too.
    this.bounced = true;
    socket.onOpen = () => {
      this.backoff.reset();
      this.state.update({ conn: 'connected', lastError: null });
    };
    socket.onMessage = (msg) => {
      if (msg.type === 'hello') {
        this.state.update({ conn: 'connected', warnings: cleanWarnings(msg.warnings, sanitize), lastSync: new Date().toISOString() });
        return;
      }
      this.state.update((cur) => {
        const warnings = applyEvent(cur.warnings, msg, sanitize);
        return warnings ? { warnings, lastSync: new Date().toISOString() } : {};
      });
    };
    socket.onClose = () => {
      this.bounced = true;
      this.state.update((cur) => (cur.conn === 'connected' ? { conn: 'connecting' } : {}));
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.reconnectTimer) return;
    this.reconnectTimer = this.setTimer(() => {
      this.reconnectTimer = null;
      this.refresh('backoff');
    }, this.backoff.next());
  }

  /** Settings changed: start again at once, with a fresh backoff. */
  restart() {
    this.backoff.reset();
    if (this.reconnectTimer) this.clearTimer(this.reconnectTimer);
    this.reconnectTimer = null;
    this.socket.close();
    return this.refresh('settings');
  }

  /** Checks the API, pulls active warnings over REST, (re)opens the socket. Never throws. */
  refresh(reason = '') {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          await this.refreshOnce(reason);
        } catch (e) {
          console.warn('consentwatch: refresh', e);
        }
      } while (this.again);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async refreshOnce() {
    const { apiBase, apiBaseError, token } = await this.getSettings();
    // /v1/health needs no token: whether consentwatch runs is known (and shown) before pairing too
    let health;
    let healthError = null;
    try {
      health = await this.apiFetch(apiBase, '/v1/health');
    } catch (e) {
      healthError = e;
    }
    const facts = healthFacts(healthError ? null : health);
    if (!token) {
      this.socket.close();
      return this.state.update({ conn: 'unpaired', warnings: [], apiBase, lastError: apiBaseError, ...facts });
    }
    if (healthError) {
      this.bounced = true;
      this.socket.close();
      this.scheduleReconnect();
      return this.state.update({ conn: 'down', apiBase, lastError: healthError.message, ...facts, selftest: null });
    }
    try {
      const body = await this.apiFetch(apiBase, '/v1/warnings?status=active', { token });
      await this.state.update({
        conn: this.socket.isOpenFor(apiBase, token) ? 'connected' : 'connecting',
        warnings: cleanWarnings(body.warnings, this.sanitize),
        apiBase,
        version: typeof health.version === 'string' ? health.version : null,
        rules: Number.isInteger(health.rules) ? health.rules : null,
        proxyPort: Number.isInteger(health.proxy_port) ? health.proxy_port : null,
        lastSync: new Date().toISOString(),
        lastError: null,
        ...facts,
      });
    } catch (e) {
      this.socket.close();
      if (e.kind === 'unauthorized') return this.state.update({ conn: 'unauthorized', warnings: [], apiBase, lastError: e.message, ...facts });
      this.scheduleReconnect();
      return this.state.update({ conn: e.kind === 'down' ? 'down' : 'error', apiBase, lastError: e.message, ...facts });
    }
    if (!(await this.socket.open(apiBase, token))) this.scheduleReconnect();
    await this.syncRules(apiBase, token, health).catch((e) => console.warn('consentwatch: rules', e));
    // back after being away: apply the PAC again (a changed proxy setting ends Chromium's bypass of a proxy it
    // marked bad), then prove the route (the self-test) before anything says "Watching"
    const force = this.bounced;
    this.bounced = false;
    this.syncRouting(apiBase, token, { force })
      .catch((e) => console.warn('consentwatch: routing', e))
      .then(() => this.afterSync({ apiBase, token, health, force }))
      .catch((e) => console.warn('consentwatch: after sync', e));
    return this.state.load();
  }
}

/** What /v1/health says about the route, for the status: up or down, refused TLS handshakes, the self-test URL. */
export function healthFacts(health) {
  if (!health || typeof health !== 'object') {
    return { backend: health === null ? 'down' : 'up', tlsFailures: {}, selftestUrl: null };
  }
  const failures = {};
  if (health.tls_failures && typeof health.tls_failures === 'object') {
    for (const [host, n] of Object.entries(health.tls_failures).slice(0, 200)) {
      if (typeof host === 'string' && host.length <= 253 && Number.isInteger(n) && n > 0) failures[host] = n;
    }
  }
  return { backend: 'up', tlsFailures: failures, selftestUrl: typeof health.selftest_url === 'string' ? health.selftest_url : null };
}
