// One-click pairing's worker logic (background/pairing.js), with node --test: the host's answer checked field by
// field, the browsers' native messaging errors as one line, the offer kept until confirmed, the handler table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import '../../extension/lib/common.js';
import { SessionArea } from '../../extension/background/state.js';
import { Actions } from '../../extension/background/actions.js';
import { makeDispatcher } from '../../extension/background/messages.js';
import { HOST_NAME, OFFER_KEY, OFFER_TTL_MS, Pairing, checkHostReply, nativeErrorText, pairingHandlers }
  from '../../extension/background/pairing.js';

const CW = globalThis.CW;
const TOKEN = 'k'.repeat(43);

/** storage.local as the browser gives it: get(keys) -> {key: value}, set(obj). */
class LocalArea {
  constructor() {
    this.data = {};
  }

  async get(keys) {
    return Object.fromEntries(keys.filter((k) => k in this.data).map((k) => [k, this.data[k]]));
  }

  async set(obj) {
    Object.assign(this.data, structuredClone(obj));
  }
}

/** The API as Actions.testConnection reaches it: health without a token, warnings with the right one only. */
function apiFetchFor({ base = 'http://127.0.0.1:8765', token = TOKEN, up = true } = {}) {
  const calls = [];
  const apiFetch = async (apiBase, path, opts = {}) => {
    calls.push([apiBase, path, opts.token || null]);
    if (!up || apiBase !== base) throw Object.assign(new Error('down'), { kind: 'down' });
    if (path === '/v1/health') return { status: 'ok', version: '0.1.0', rules: 29 };
    if (opts.token !== token) throw Object.assign(new Error('401'), { kind: 'unauthorized' });
    return { warnings: [{ id: 'w-1' }] };
  };
  return { apiFetch, calls };
}

function makePairing({ reply, fail = null, api = apiFetchFor(), now = () => 1_000_000 } = {}) {
  const sent = [];
  const session = new SessionArea(null); // the worker's in-memory fallback: the same get/set as storage.session
  const local = new LocalArea();
  const actions = new Actions({ state: null, getSettings: null, apiFetch: api.apiFetch, tabs: null, routing: null, sanitize: null, CW });
  const pairing = new Pairing({
    sendNative: async (host, msg) => {
      sent.push([host, msg]);
      if (fail) throw new Error(fail);
      return reply;
    },
    testConnection: (b, t) => actions.testConnection(b, t), session, local, CW, now,
  });
  return { pairing, sent, session, local, api };
}

test('the host is asked for a pair, the answer tested, and the page sees the address but never the token', async () => {
  const { pairing, sent, session, local, api } = makePairing({ reply: { type: 'pair', apiBase: 'http://127.0.0.1:8765', token: TOKEN, version: '0.1.0' } });
  const offer = await pairing.offer();
  assert.deepEqual(sent, [[HOST_NAME, { type: 'pair' }]]);
  assert.deepEqual(offer, { ok: true, apiBase: 'http://127.0.0.1:8765', version: '0.1.0', rules: 29, warnings: 1 });
  assert.ok(!JSON.stringify(offer).includes(TOKEN));
  assert.deepEqual(api.calls.at(-1), ['http://127.0.0.1:8765', '/v1/warnings?status=active', TOKEN]);
  assert.deepEqual(local.data, {}); // nothing saved before the user confirms
  assert.equal((await session.get(OFFER_KEY)).token, TOKEN);

  const accepted = await pairing.accept();
  assert.deepEqual(accepted, { ok: true, apiBase: 'http://127.0.0.1:8765', message: 'Paired with consentwatch at http://127.0.0.1:8765.' });
  assert.deepEqual(local.data, { apiBase: 'http://127.0.0.1:8765', token: TOKEN }); // as a pasted token is saved
  assert.equal(await session.get(OFFER_KEY), null);
  assert.equal((await pairing.accept()).ok, false); // one offer, one confirmation
});

test('confirming with the routing box checked turns routing on in the same click; pairing stands if it cannot', async () => {
  const reply = { type: 'pair', apiBase: 'http://127.0.0.1:8765', token: TOKEN };
  const turnedOn = [];
  const { pairing, local } = makePairing({ reply });
  pairing.setRouting = async (on) => {
    turnedOn.push([on, { ...local.data }]); // the token is saved before routing asks the API for the PAC
  };
  await pairing.offer();
  const both = await pairing.accept({ routing: true });
  assert.deepEqual(both, { ok: true, apiBase: 'http://127.0.0.1:8765', routing: { on: true, error: null },
    message: 'Paired with consentwatch at http://127.0.0.1:8765. Routing is on.' });
  assert.deepEqual(turnedOn, [[true, { apiBase: 'http://127.0.0.1:8765', token: TOKEN }]]);

  // unchecked: today's behaviour, routing untouched
  await pairing.offer();
  assert.equal((await pairing.accept({ routing: false })).routing, undefined);
  assert.equal(turnedOn.length, 1);

  // the browser refuses the proxy setting: paired all the same, and the reason is said
  pairing.setRouting = async () => {
    throw new Error('Another extension controls your proxy settings.');
  };
  await pairing.offer();
  const refused = await pairing.accept({ routing: true });
  assert.equal(refused.ok, true);
  assert.deepEqual(refused.routing, { on: false, error: 'Another extension controls your proxy settings.' });
  assert.equal(refused.message, 'Paired with consentwatch at http://127.0.0.1:8765. Routing is still off: Another extension controls your proxy settings.');
  assert.deepEqual(local.data, { apiBase: 'http://127.0.0.1:8765', token: TOKEN });

  // an expired offer turns nothing on
  let calls = 0;
  pairing.setRouting = async () => { calls += 1; };
  assert.equal((await pairing.accept({ routing: true })).ok, false);
  assert.equal(calls, 0);
});

test('the accept message carries the routing box, and only a real true turns it on', async () => {
  const seen = [];
  const table = pairingHandlers({ accept: async (opts) => { seen.push(opts); return 'ok'; } });
  await table.ui['ui:pair-accept']({ type: 'ui:pair-accept', routing: true });
  await table.ui['ui:pair-accept']({ type: 'ui:pair-accept', routing: 'yes' });
  await table.ui['ui:pair-accept']({ type: 'ui:pair-accept' });
  assert.deepEqual(seen, [{ routing: true }, { routing: false }, { routing: false }]);
});

test('an offer expires, and cancel forgets it', async () => {
  let now = 5_000_000;
  const { pairing, local } = makePairing({ reply: { type: 'pair', apiBase: 'http://localhost:9000', token: TOKEN },
    api: apiFetchFor({ base: 'http://localhost:9000' }), now: () => now });
  assert.equal((await pairing.offer()).ok, true);
  now += OFFER_TTL_MS;
  const late = await pairing.accept();
  assert.equal(late.ok, false);
  assert.match(late.message, /click Pair again/);
  assert.deepEqual(local.data, {});

  assert.equal((await pairing.offer()).ok, true);
  await pairing.cancel();
  assert.equal((await pairing.accept()).ok, false);
  assert.deepEqual(local.data, {});
});

test('what the host or the API says no to is one line, and nothing is kept', async () => {
  const cases = [
    [{ fail: 'Specified native messaging host not found.' }, /pairing helper is not installed for this browser: run “consentwatch trust”/],
    [{ fail: 'No such native application consentwatch.pairing' }, /not installed for this browser/], // Firefox
    [{ fail: 'Access to the specified native messaging host is forbidden.' }, /does not know this extension/],
    [{ fail: 'Failed to start native messaging host.' }, /could not start/],
    [{ fail: 'Native host has exited.' }, /pairing helper failed \(Native host has exited\.\)/],
    [{ reply: { type: 'error', error: 'not-running', message: 'consentwatch is not running (data dir /x): start it with `consentwatch run`, then pair again.' } }, /^consentwatch is not running \(data dir/],
    [{ reply: { type: 'error', error: 'no-token' } }, /no pairing token yet/],
    [{ reply: { type: 'pair', apiBase: 'http://127.0.0.1:8765', token: 'x'.repeat(43) } }, /refused this token/], // the API says 401
    [{ reply: { type: 'pair', apiBase: 'http://127.0.0.1:8765', token: TOKEN }, api: apiFetchFor({ up: false }) }, /not running at http:\/\/127\.0\.0\.1:8765/],
  ];
  for (const [opts, expected] of cases) {
    const { pairing, session, local } = makePairing(opts);
    const r = await pairing.offer();
    assert.equal(r.ok, false, JSON.stringify(opts));
    assert.match(r.message, expected);
    assert.ok(!r.message.includes('\n'));
    assert.equal(await session.get(OFFER_KEY), null);
    assert.deepEqual(local.data, {});
  }
  const none = new Pairing({ sendNative: null, testConnection: async () => ({ ok: true }), session: new SessionArea(null), local: new LocalArea(), CW });
  assert.match((await none.offer()).message, /native messaging is off\): paste the token/);
});

test('a host answer is used only when every field is what a pairing needs', () => {
  const good = { type: 'pair', apiBase: 'http://127.0.0.1:8765/', token: ` ${TOKEN} `, version: '0.1.0' };
  assert.deepEqual(checkHostReply(good, CW), { ok: true, apiBase: 'http://127.0.0.1:8765', token: TOKEN, version: '0.1.0' });
  for (const bad of [null, 'pair', [], { type: 'pair' }, { ...good, type: 'PAIR' },
    { ...good, apiBase: 'http://evil.example:8765' }, { ...good, apiBase: 'https://127.0.0.1:8765' },
    { ...good, apiBase: 'http://[::1]:8765' }, { ...good, apiBase: 42 }, { ...good, apiBase: undefined },
    { ...good, token: '' }, { ...good, token: 'two words' }, { ...good, token: 7 }, { ...good, token: 'x'.repeat(600) }]) {
    const r = checkHostReply(bad, CW);
    assert.equal(r.ok, false, JSON.stringify(bad));
    assert.ok(!('token' in r));
  }
  assert.equal(checkHostReply({ type: 'error', error: 'not-running' }, CW).stage, 'down');
  assert.equal(checkHostReply({ type: 'error', error: 'whatever', message: 'm'.repeat(900) }, CW).message.length, 300);
  assert.match(nativeErrorText(undefined), /no reason given/);
});

test('pairing messages are their own allow-list, from the extension\'s pages only, and every one the UI sends is in it', async () => {
  const table = pairingHandlers({ offer: async () => 'offered', accept: async () => 'accepted', cancel: async () => 'cancelled' });
  assert.deepEqual(Object.keys(table.ui).sort(), ['ui:pair-accept', 'ui:pair-cancel', 'ui:pair-offer']);
  assert.deepEqual(Object.keys(table.page), []);
  assert.ok(Object.isFrozen(table.ui) && Object.isFrozen(table.page));
  const dispatch = makeDispatcher(table, { extId: 'me', extOrigin: 'chrome-extension://me/', hostAllowed: () => false });
  const ask = (msg, sender) => new Promise((resolve) => {
    if (!dispatch(msg, sender, resolve)) resolve('dropped');
  });
  const options = { id: 'me', url: 'chrome-extension://me/options.html' };
  assert.deepEqual(await ask({ type: 'ui:pair-offer' }, options), { ok: true, result: 'offered' });
  assert.equal(await ask({ type: 'ui:pair-accept' }, { id: 'me', tab: { id: 3 }, frameId: 0, url: 'https://www.linkedin.com/' }), 'dropped');
  assert.equal(await ask({ type: 'ui:pair-accept' }, { id: 'other', url: 'chrome-extension://other/x.html' }), 'dropped');
  assert.equal(await ask({ type: 'ui:get-state' }, options), 'dropped'); // messages.js's, not this table's

  const ui = fs.readFileSync(new URL('../../extension/pairing-ui.js', import.meta.url), 'utf8');
  const sentTypes = [...ui.matchAll(/['"](ui:[a-z-]+)['"]/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(sentTypes)].sort(), Object.keys(table.ui).sort());
});
