/* The worker's state, mirrored into storage.session so the popup can read it and a woken worker starts from it.
 * Updates are serialised (read-modify-write in order); listeners hear (next, previous) after each write. */

export const STATE_KEY = 'cwState';

export const EMPTY_STATE = Object.freeze({
  conn: 'starting', // starting | unpaired | connecting | connected | down | unauthorized | error
  warnings: [],
  apiBase: 'http://127.0.0.1:8765',
  version: null,
  rules: null,
  proxyPort: null,
  lastSync: null,
  lastError: null,
  backend: null, // 'up' | 'down' | null: did /v1/health answer (asked before pairing too)
  tlsFailures: {}, // refused TLS handshakes per host, recent (from /v1/health)
  selftestUrl: null, // where the proxy answers the self-test (from /v1/health)
  selftest: null, // the last self-test: {outcome, at, detail} (background/selftest.js)
});

/** storage.session where the browser has it (Chrome 102+, Firefox 115+), else memory. */
export class SessionArea {
  constructor(area) {
    this.area = area ?? null;
    this.memory = {};
  }

  async get(key) {
    if (!this.area) return this.memory[key];
    return (await this.area.get(key))[key];
  }

  async set(obj) {
    if (!this.area) {
      this.memory = { ...this.memory, ...obj };
      return;
    }
    await this.area.set(obj);
  }
}

/** A chain that runs async functions one after another, whatever each one does. */
export function serial() {
  let chain = Promise.resolve();
  return (fn) => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => {});
    return run;
  };
}

export class StateStore {
  constructor(session, { initial = EMPTY_STATE } = {}) {
    this.session = session;
    this.initial = initial;
    this.listeners = [];
    this.queue = serial();
  }

  async load() {
    return { ...this.initial, ...((await this.session.get(STATE_KEY)) || {}) };
  }

  /** patch: an object, or a function of the current state giving one. Resolves to the new state. */
  update(patch) {
    return this.queue(async () => {
      const cur = await this.load();
      const delta = typeof patch === 'function' ? patch(cur) : patch;
      const next = { ...cur, ...delta };
      await this.session.set({ [STATE_KEY]: next });
      for (const listener of this.listeners) {
        try {
          await listener(next, cur, delta);
        } catch (e) {
          console.warn('consentwatch: state listener', e);
        }
      }
      return next;
    });
  }
}

/** Active warnings as the API sent them, each checked field by field (CW.sanitizeWarning), once each. */
export function cleanWarnings(list, sanitize) {
  const out = [];
  const seen = new Set();
  for (const raw of Array.isArray(list) ? list : []) {
    const w = sanitize(raw);
    if (w && w.status === 'active' && !seen.has(w.id)) {
      seen.add(w.id);
      out.push(w);
    }
  }
  return out;
}

/** Warnings after one WebSocket message (hello, warning, resolved); null when the message changes nothing. */
export function applyEvent(warnings, msg, sanitize) {
  if (!msg || typeof msg !== 'object') return null;
  switch (msg.type) {
    case 'hello':
      return cleanWarnings(msg.warnings, sanitize);
    case 'warning': {
      const w = sanitize(msg.warning);
      if (!w) return null;
      const others = warnings.filter((x) => x.id !== w.id);
      return w.status === 'active' ? [...others, w] : others;
    }
    case 'resolved': {
      const id = msg.warning && typeof msg.warning.id === 'string' ? msg.warning.id : null;
      return id ? warnings.filter((x) => x.id !== id) : null;
    }
    default: // ping, pong and anything newer: hearing it is enough
      return null;
  }
}
