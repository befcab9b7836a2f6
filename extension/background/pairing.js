/* One-click pairing: ask consentwatch's pairing host on this computer (native messaging, `consentwatch trust`
 * installs it) for the API address and token, check them against the API, keep them as an offer until the user
 * confirms it (the page shows the address), then save them exactly as a pasted token is saved.
 *
 * The offer waits in storage.session (only the extension's own pages and this worker can read it), so a worker
 * that slept between the two clicks still has it. The token never reaches a page: the page sees the address. */

export const HOST_NAME = 'consentwatch.pairing'; // native_host.HOST_NAME
export const OFFER_KEY = 'cwPairOffer';
export const OFFER_TTL_MS = 5 * 60 * 1000;

const SETUP = 'run “consentwatch trust” in a terminal (or “consentwatch trust --pairing-only”), then try again, or paste the token';

/** One line for a native messaging failure, from Chromium's or Firefox's wording. */
export function nativeErrorText(message) {
  const m = String(message ?? '');
  if (/not found|no such native application|invalid native messaging host/i.test(m)) {
    return `consentwatch’s pairing helper is not installed for this browser: ${SETUP}.`;
  }
  if (/forbidden|not allowed|not permitted/i.test(m)) {
    return `consentwatch’s pairing helper does not know this extension: ${SETUP}.`;
  }
  if (/native messaging is not available/i.test(m)) {
    return 'This browser does not let the extension ask consentwatch (native messaging is off): paste the token.';
  }
  if (/failed to start/i.test(m)) {
    return `consentwatch’s pairing helper could not start (moved or removed?): ${SETUP}.`;
  }
  return `consentwatch’s pairing helper failed (${m.slice(0, 160) || 'no reason given'}): ${SETUP}.`;
}

const HOST_ERRORS = {
  'not-running': 'consentwatch is not running: start it with “consentwatch run”, then pair again.',
  'no-token': 'consentwatch has no pairing token yet: run “consentwatch token” once, then pair again.',
  'api-off': 'consentwatch is running without its API: restart it without --api-port 0, then pair again.',
};

/** The host's answer, checked field by field: {ok, apiBase, token, version} or {ok: false, message}. */
export function checkHostReply(reply, CW) {
  const unknown = { ok: false, stage: 'host', message: `consentwatch’s pairing helper gave an answer this extension does not understand: ${SETUP}.` };
  if (!reply || typeof reply !== 'object' || Array.isArray(reply)) return unknown;
  if (reply.type === 'error') {
    const text = typeof reply.message === 'string' && reply.message.trim() ? reply.message.trim().slice(0, 300) : null;
    return { ok: false, stage: reply.error === 'not-running' ? 'down' : 'host', message: text || HOST_ERRORS[reply.error] || unknown.message };
  }
  if (reply.type !== 'pair') return unknown;
  const base = CW.normalizeApiBase(typeof reply.apiBase === 'string' ? reply.apiBase : '');
  const tok = CW.normalizeToken(typeof reply.token === 'string' ? reply.token : '');
  if (typeof reply.apiBase !== 'string' || !base.ok || !tok.ok || !tok.value) return unknown;
  return { ok: true, apiBase: base.value, token: tok.value, version: typeof reply.version === 'string' ? reply.version.slice(0, 40) : null };
}

export class Pairing {
  /**
   * sendNative(hostName, message) -> Promise of the host's reply; testConnection(apiBase, token) -> Actions'
   * answer ({ok, message, ...}); session: {get(key), set(obj)}; local: storage.local; setRouting(true) -> the
   * routing switch turned on (throws with a one-line reason), for a confirmation that asked for routing too.
   */
  constructor({ sendNative, testConnection, session, local, CW, setRouting = null, now = () => Date.now() }) {
    Object.assign(this, { sendNative, testConnection, session, local, CW, setRouting, now });
  }

  /** Asks the host, tests what it gave, keeps it as the offer. The page gets the address, never the token. */
  async offer() {
    await this.cancel();
    let reply;
    try {
      if (typeof this.sendNative !== 'function') throw new Error('native messaging is not available');
      reply = await this.sendNative(HOST_NAME, { type: 'pair' });
    } catch (e) {
      return { ok: false, stage: 'host', message: nativeErrorText(e && e.message) };
    }
    const got = checkHostReply(reply, this.CW);
    if (!got.ok) return got;
    const test = await this.testConnection(got.apiBase, got.token);
    if (!test.ok) return { ok: false, stage: test.stage, message: test.message };
    await this.session.set({ [OFFER_KEY]: { apiBase: got.apiBase, token: got.token, at: this.now() } });
    return { ok: true, apiBase: got.apiBase, version: test.version ?? got.version, rules: test.rules ?? null, warnings: test.warnings ?? null };
  }

  /** The user confirmed: the offer becomes the settings (the worker reconnects on the storage change). With routing
   * (the confirmation's box, which the user saw checked), the same click turns the routing switch on: pairing
   * stands even when routing cannot be turned on, and the answer says why (its routing: {on, error}). */
  async accept({ routing = false } = {}) {
    const offer = await this.session.get(OFFER_KEY);
    if (!offer || typeof offer !== 'object' || !(this.now() - offer.at < OFFER_TTL_MS) || offer.at > this.now()) {
      await this.cancel();
      return { ok: false, stage: 'expired', message: 'That pairing offer is no longer valid: click Pair again.' };
    }
    await this.local.set({ apiBase: offer.apiBase, token: offer.token });
    await this.cancel();
    const paired = { ok: true, apiBase: offer.apiBase, message: `Paired with consentwatch at ${offer.apiBase}.` };
    if (!routing) return paired;
    try {
      if (typeof this.setRouting !== 'function') throw new Error('this page cannot turn routing on');
      await this.setRouting(true);
    } catch (e) {
      const why = String((e && e.message) || 'no reason given').slice(0, 300);
      return { ...paired, routing: { on: false, error: why }, message: `${paired.message} Routing is still off: ${why}` };
    }
    return { ...paired, routing: { on: true, error: null }, message: `${paired.message} Routing is on.` };
  }

  async cancel() {
    await this.session.set({ [OFFER_KEY]: null });
    return { ok: true };
  }
}

/** The pairing messages from the extension's own pages: a handler table of their own (the allow-list), served by
 * the same dispatcher as messages.js's tables (only ui:* senders, the extension's pages). */
export function pairingHandlers(pairing) {
  return {
    page: Object.freeze({}),
    ui: Object.freeze({
      'ui:pair-offer': () => pairing.offer(),
      'ui:pair-accept': (msg) => pairing.accept({ routing: msg.routing === true }),
      'ui:pair-cancel': () => pairing.cancel(),
    }),
  };
}
