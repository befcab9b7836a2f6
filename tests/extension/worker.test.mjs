// Unit tests of the extension's worker logic (node --test; tests/test_extension_unit.py runs them from pytest).
// Real modules from extension/background/, driven with small in-memory stand-ins for the browser's APIs.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import '../../extension/lib/common.js';
import { Backoff } from '../../extension/background/backoff.js';
import { SessionArea, StateStore, applyEvent, cleanWarnings, serial } from '../../extension/background/state.js';
import { TabTracker, pushToTabs, warningsForHost } from '../../extension/background/tabs.js';
import { PRIVATE_BROWSING_NEEDED, Routing, blockedBy, pacDataUrl, usablePac } from '../../extension/background/routing.js';
import { ApiError, makeApiFetch } from '../../extension/background/api.js';
import { makeDispatcher, makeHandlers } from '../../extension/background/messages.js';
import { ObservationRelay, checkObservation } from '../../extension/background/observe.js';
import { compactRules, eyeConfig, extraHosts, isApiHost, DynamicScripts } from '../../extension/background/rules.js';
import { LiveSocket } from '../../extension/background/socket.js';
import { Actions } from '../../extension/background/actions.js';
import { Sync } from '../../extension/background/sync.js';

const CW = globalThis.CW;
const sanitize = (w) => CW.sanitizeWarning(w);
const tick = () => new Promise((r) => setImmediate(r));

/** storage.session as the browser gives it: async get/set, each call taking a turn of the event loop. */
class SlowArea {
  constructor() {
    this.data = {};
    this.writes = 0;
  }

  async get(key) {
    await tick();
    return { [key]: structuredClone(this.data[key]) };
  }

  async set(obj) {
    await tick();
    this.writes += 1;
    Object.assign(this.data, structuredClone(obj));
  }
}

const warning = (id, hosts, extra = {}) => ({ id, status: 'active', kind: 'toggle_on', platform: id, title: id, hosts,
  remedy: { steps: [] }, ...extra });

test('backoff doubles from 1 s to a 60 s cap, with jitter, and starts over after a success', () => {
  const b = new Backoff({ random: () => 0.5 }); // jitter factor 1.0
  const delays = Array.from({ length: 9 }, () => b.next());
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  b.reset();
  assert.equal(b.next(), 1000);
  const lo = new Backoff({ random: () => 0 });
  const hi = new Backoff({ random: () => 0.999999 });
  assert.equal(lo.next(), 750);
  assert.ok(hi.next() < 1250 && hi.next() > 2400);
  const many = new Backoff({ random: () => 0.5 });
  for (let i = 0; i < 100; i += 1) many.next();
  assert.equal(many.attempts, 10); // no overflow however long consentwatch stays away
});

test('two tabs tracked at the same moment are both kept (the banner reaches both)', async () => {
  const area = new SlowArea();
  const tracker = new TabTracker(new SessionArea(area));
  await Promise.all([tracker.track(11, 'www.linkedin.com'), tracker.track(12, 'x.com'), tracker.track(13, 'github.com')]);
  assert.deepEqual(area.data.cwTabs, { 11: 'www.linkedin.com', 12: 'x.com', 13: 'github.com' });
  await Promise.all([tracker.untrack(12), tracker.track(14, 'claude.ai')]);
  assert.deepEqual(await tracker.list(), [[11, 'www.linkedin.com'], [13, 'github.com'], [14, 'claude.ai']]);
  // a woken worker reads the tabs back from storage.session
  assert.deepEqual(await new TabTracker(new SessionArea(area)).list(), await tracker.list());
});

test('the old read-modify-write of the stored map really lost a tab (what the tracker fixes)', async () => {
  const area = new SlowArea();
  const session = new SessionArea(area);
  const naive = async (tabId, host) => {
    const tabs = (await session.get('cwTabs')) || {};
    tabs[tabId] = host;
    await session.set({ cwTabs: tabs });
  };
  await Promise.all([naive(11, 'www.linkedin.com'), naive(12, 'x.com')]);
  assert.equal(Object.keys(area.data.cwTabs).length, 1);
});

test('each tab hears only its own host’s warnings; a tab that is gone is forgotten', async () => {
  const tracker = new TabTracker(new SessionArea(new SlowArea()));
  await tracker.track(1, 'www.linkedin.com');
  await tracker.track(2, 'news.substack.com');
  await tracker.track(3, 'closed.example');
  const ws = [warning('a', ['www.linkedin.com', 'linkedin.com']), warning('b', ['*.substack.com'])];
  assert.deepEqual(warningsForHost(ws, 'linkedin.com', CW.hostMatches).map((w) => w.id), ['a']);
  assert.deepEqual(warningsForHost(ws, 'substack.com', CW.hostMatches).map((w) => w.id), ['b']);
  assert.deepEqual(warningsForHost(ws, 'evilsubstack.com', CW.hostMatches), []);
  const sent = [];
  await pushToTabs(tracker, async (id, msg) => {
    if (id === 3) throw new Error('no receiving end');
    sent.push([id, msg.warnings.map((w) => w.id)]);
  }, (host) => ({ type: CW.TO_PAGE.warnings, warnings: warningsForHost(ws, host, CW.hostMatches) }));
  assert.deepEqual(sent.sort(), [[1, ['a']], [2, ['b']]]);
  assert.deepEqual((await tracker.list()).map(([id]) => id), [1, 2]);
});

test('state updates run in order and each listener sees the state before and after', async () => {
  const store = new StateStore(new SessionArea(new SlowArea()));
  const seen = [];
  store.listeners.push((next, prev) => seen.push([prev.warnings.length, next.warnings.length]));
  await Promise.all([
    store.update({ warnings: [1] }),
    store.update((cur) => ({ warnings: [...cur.warnings, 2] })),
    store.update((cur) => ({ warnings: [...cur.warnings, 3] })),
  ]);
  assert.deepEqual((await store.load()).warnings, [1, 2, 3]);
  assert.deepEqual(seen, [[0, 1], [1, 2], [2, 3]]);
  const order = [];
  const run = serial();
  await Promise.all([run(async () => { await tick(); order.push('a'); throw new Error('x'); }).catch(() => {}),
    run(async () => order.push('b'))]);
  assert.deepEqual(order, ['a', 'b']); // a failing step does not stop the queue
});

test('socket events change the warnings as the API says', () => {
  let ws = cleanWarnings([warning('a', ['x.com']), warning('a', ['x.com']), { id: '<bad>' },
    warning('c', ['x.com'], { status: 'dismissed' })], sanitize);
  assert.deepEqual(ws.map((w) => w.id), ['a']);
  ws = applyEvent(ws, { type: 'warning', warning: warning('b', ['github.com'], { seen_by: ['page', 'bogus'] }) }, sanitize);
  assert.deepEqual(ws.map((w) => [w.id, w.seen_by]), [['a', []], ['b', ['page']]]);
  ws = applyEvent(ws, { type: 'resolved', warning: { id: 'a' } }, sanitize);
  assert.deepEqual(ws.map((w) => w.id), ['b']);
  assert.equal(applyEvent(ws, { type: 'ping' }, sanitize), null);
  assert.equal(applyEvent(ws, { type: 'resolved', warning: {} }, sanitize), null);
  assert.deepEqual(applyEvent(ws, { type: 'hello', warnings: [] }, sanitize), []);
});

test('PAC: only a PAC script is applied; Firefox gets it as a data: URL that decodes back to it', async () => {
  const pac = 'function FindProxyForURL(url, host) { // rule hosts: “www.linkedin.com”\n  return "DIRECT"; }';
  assert.ok(usablePac(pac));
  assert.ok(!usablePac('<html>not a pac</html>') && !usablePac(null) && !usablePac(`FindProxyForURL${' '.repeat(200_001)}`));
  const url = pacDataUrl(pac);
  assert.ok(url.startsWith('data:application/x-ns-proxy-autoconfig;base64,'));
  assert.equal(Buffer.from(url.split(',')[1], 'base64').toString('utf8'), pac);
  assert.match(blockedBy('controlled_by_other_extensions'), /Another extension/);
  assert.equal(blockedBy('controlled_by_this_extension'), null);

  // the switch, against a stand-in of chrome.proxy and a PAC that the API serves
  let level = 'controllable_by_this_extension';
  const set = [];
  const proxy = { settings: {
    get: async () => ({ levelOfControl: level, value: { mode: level === 'controlled_by_this_extension' ? 'pac_script' : 'system' } }),
    set: async (v) => { set.push(v); level = 'controlled_by_this_extension'; },
    clear: async () => { set.push('clear'); level = 'controllable_by_this_extension'; },
  } };
  const local = { data: {}, async get(k) { return { [k]: this.data[k] }; }, async set(o) { Object.assign(this.data, o); } };
  let served = pac;
  const routing = new Routing({ proxy, local, isFirefox: false, apiFetch: async () => served,
    getSettings: async () => ({ apiBase: 'http://127.0.0.1:1', token: 't' }) });
  assert.equal((await routing.set(true)).enabled, true);
  assert.equal(set[0].value.pacScript.data, pac);
  served = pac.replace('DIRECT', 'PROXY 127.0.0.1:9; DIRECT');
  await routing.sync('http://127.0.0.1:1', 't');
  assert.equal(set.at(-1).value.pacScript.data, served); // the API's PAC changed: the browser's follows
  assert.equal((await routing.set(false)).enabled, false);
  assert.equal(set.at(-1), 'clear');
  served = 'nonsense';
  await assert.rejects(routing.set(true), /unusable PAC/);
  assert.equal(local.data.routing.enabled, false);
  level = 'controlled_by_other_extensions';
  const st = await routing.status();
  assert.equal(st.enabled, false);
  assert.match(st.blockedBy, /Another extension/);
});

test('Firefox: routing needs the private-windows permission, and the popup is told so and where to give it', async () => {
  const pac = 'function FindProxyForURL(url, host) { return "DIRECT"; }';
  let level = 'controllable_by_this_extension';
  let allowed = false;
  const set = [];
  // Firefox's proxy.settings: set() refuses an add-on not allowed in private windows, with its raw words
  const proxy = { settings: {
    get: async () => ({ levelOfControl: level, value: { proxyType: level === 'controlled_by_this_extension' ? 'autoConfig' : 'system' } }),
    set: async (v) => {
      if (!allowed) throw new Error('proxy.settings requires private browsing permission.');
      set.push(v);
      level = 'controlled_by_this_extension';
    },
    clear: async () => { level = 'controllable_by_this_extension'; },
  } };
  const local = { data: {}, async get(k) { return { [k]: this.data[k] }; }, async set(o) { Object.assign(this.data, o); } };
  let knows = true; // whether extension.isAllowedIncognitoAccess() tells the truth
  const routing = new Routing({ proxy, local, isFirefox: true, apiFetch: async () => pac,
    getSettings: async () => ({ apiBase: 'http://127.0.0.1:1', token: 't' }), privateAllowed: async () => (knows ? allowed : true) });

  assert.match(PRIVATE_BROWSING_NEEDED, /about:addons → consentwatch → Run in Private Windows → Allow/);
  let st = await routing.status();
  assert.equal(st.blockedBy, PRIVATE_BROWSING_NEEDED); // before anyone tries: the popup can say it at once
  await assert.rejects(routing.set(true), (e) => e.message === PRIVATE_BROWSING_NEEDED);
  assert.deepEqual(set, []);
  assert.equal(local.data.routing.error, PRIVATE_BROWSING_NEEDED);

  knows = false; // the raw refusal from set() is put in the same words
  await assert.rejects(routing.set(true), (e) => e.message === PRIVATE_BROWSING_NEEDED);

  knows = true;
  allowed = true; // allowed in about:addons: the stale refusal goes, and the switch works
  st = await routing.status();
  assert.equal(st.blockedBy, null);
  assert.equal(st.error, null);
  assert.equal((await routing.set(true)).enabled, true);
  assert.ok(set[0].value.autoConfigUrl.startsWith('data:application/x-ns-proxy-autoconfig;base64,'));
});

test('the API client: token as a bearer header, JSON bodies, one error kind per failure', async () => {
  const calls = [];
  const answers = [
    new Response('{"ok":1}', { status: 200 }),
    new Response('{}', { status: 401 }),
    new Response('{}', { status: 429, headers: { 'Retry-After': '3' } }),
  ];
  const apiFetch = makeApiFetch(async (url, init) => { calls.push([url, init]); return answers.shift(); });
  assert.deepEqual(await apiFetch('http://127.0.0.1:1', '/v1/observations', { token: 'T', method: 'POST', json: { a: 1 } }), { ok: 1 });
  assert.equal(calls[0][1].headers.Authorization, 'Bearer T');
  assert.equal(calls[0][1].headers['Content-Type'], 'application/json');
  assert.equal(calls[0][1].body, '{"a":1}');
  assert.equal(calls[0][1].credentials, 'omit');
  await assert.rejects(apiFetch('http://127.0.0.1:1', '/v1/warnings', { token: 'T' }), (e) => e.kind === 'unauthorized');
  await assert.rejects(apiFetch('http://127.0.0.1:1', '/v1/observations?x=1', { token: 'T' }),
    (e) => e.kind === 'http' && e.status === 429 && e.retryAfter === 3 && !e.message.includes('x=1'));
  const down = makeApiFetch(async () => { throw new TypeError('Failed to fetch'); });
  await assert.rejects(down('http://127.0.0.1:1', '/v1/health'), (e) => e instanceof ApiError && e.kind === 'down');
});

function handlerDeps(log) {
  return {
    tabs: { track: async (...a) => log.push(['track', ...a]) },
    warningsFor: async () => [{ id: 'w-1' }],
    eyeFor: async (h) => ({ host: h }),
    observe: async (msg, ctx) => { log.push(['observe', msg.type, ctx.hostname]); return true; },
    actions: { dismiss: async (id) => log.push(['dismiss', id]), openSettings: async () => {}, uiState: async () => ({ s: 1 }),
      openReport: async () => {}, testConnection: async () => ({}) },
    routing: { set: async () => ({}) },
    refresh: async () => {},
    openOptions: async () => {},
  };
}

test('message handler tables are the allow-list; senders are checked per table', async () => {
  const log = [];
  const handlers = makeHandlers(handlerDeps(log));
  assert.deepEqual(Object.keys(handlers.page).sort(),
    ['page:dismiss', 'page:get', 'page:observe', 'page:open-settings', 'page:rules']);
  assert.deepEqual(Object.keys(handlers.ui).sort(), ['ui:check', 'ui:dismiss', 'ui:get-state', 'ui:open-options', 'ui:open-report',
    'ui:open-settings', 'ui:reapply', 'ui:refresh', 'ui:set-routing', 'ui:test-connection']);
  assert.ok(Object.isFrozen(handlers.page) && Object.isFrozen(handlers.ui));
  const dispatch = makeDispatcher(handlers, { extId: 'me', extOrigin: 'chrome-extension://me/',
    hostAllowed: async (h) => { await tick(); return h === 'www.linkedin.com'; } }); // asks the stored rules
  const page = { id: 'me', tab: { id: 7 }, frameId: 0, url: 'https://www.linkedin.com/settings?x=1' };
  const popup = { id: 'me', url: 'chrome-extension://me/popup.html' };
  // dropped: refused at once, or never answered (a page:* message from a host the page eye does not run on)
  const ask = (msg, sender) => new Promise((resolve) => {
    const answered = dispatch(msg, sender, resolve);
    if (!answered) resolve('dropped');
    setTimeout(() => resolve('dropped'), 50);
  });
  assert.deepEqual(await ask({ type: 'page:get' }, page), { ok: true, result: { warnings: [{ id: 'w-1' }] } });
  assert.deepEqual(log.at(-1), ['track', 7, 'www.linkedin.com']);
  assert.deepEqual(await ask({ type: 'ui:get-state' }, popup), { ok: true, result: { s: 1 } });
  for (const [msg, sender] of [
    [{ type: 'ui:get-state' }, page], // ui:* from a content script
    [{ type: 'page:get' }, popup], // page:* from our own page (no tab)
    [{ type: 'page:get' }, { ...page, url: 'https://example.org/' }], // a host without a rule
    [{ type: 'page:get' }, { ...page, url: 'http://www.linkedin.com/' }], // not https
    [{ type: 'page:get' }, { ...page, frameId: 3 }], // a frame
    [{ type: 'page:get' }, { ...page, id: 'other' }], // another extension
    [{ type: 'evil' }, popup], [{ type: 'constructor' }, popup], [{ type: 'toString' }, page], ['str', popup], [{}, popup],
  ]) {
    assert.equal(await ask(msg, sender), 'dropped', JSON.stringify(msg));
  }
  assert.deepEqual(await ask({ type: 'page:dismiss', id: 'w-unknown' }, page), { ok: false, error: 'unknown warning' });
  assert.deepEqual(await ask({ type: 'page:dismiss', id: 'w-1' }, page), { ok: true, result: { ok: true } });
  assert.deepEqual(log.at(-1), ['dismiss', 'w-1']);
});

test('every message type the parts send is one a table or a content script accepts', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const root = new URL('../../extension/', import.meta.url).pathname;
  const files = ['popup.js', 'options.js', 'firstrun.js', 'lib/status-ui.js', 'content/eye.js', 'content/banner.js', 'background.js'];
  const handlers = makeHandlers(handlerDeps([]));
  const accepted = new Set([...Object.keys(handlers.page), ...Object.keys(handlers.ui), ...Object.values(CW.TO_PAGE)]);
  for (const f of files) {
    const text = fs.readFileSync(path.join(root, f), 'utf8');
    for (const m of text.matchAll(/['"]((?:page|ui):[a-z-]+)['"]/g)) assert.ok(accepted.has(m[1]), `${f}: ${m[1]}`);
  }
});

test('observations: latest wins per region, one at a time, a 429 waits as told and sends the latest', async () => {
  const posted = [];
  const waits = [];
  let fail = null;
  let release;
  const relay = new ObservationRelay({
    post: async (p) => {
      posted.push(p.html);
      if (fail) { const e = fail; fail = null; throw e; }
      await new Promise((r) => { release = r; });
    },
    wait: async (ms) => { waits.push(ms); },
  });
  const done = relay.submit('k', { html: 'on' });
  relay.submit('k', { html: 'off' });
  relay.submit('k', { html: 'on again' }); // replaces "off", which was never sent
  await tick();
  assert.deepEqual(posted, ['on']);
  release();
  await tick();
  await tick();
  assert.deepEqual(posted, ['on', 'on again']);
  release();
  await done;
  assert.equal(relay.dropped, 1);
  fail = Object.assign(new Error('429'), { status: 429, retryAfter: 2 });
  const again = relay.submit('k', { html: 'x' });
  await tick();
  await tick();
  release();
  await again;
  assert.deepEqual(posted.slice(-2), ['x', 'x']);
  assert.deepEqual(waits, [2000]);
  fail = Object.assign(new Error('422'), { status: 422 });
  await relay.submit('k2', { html: 'y' });
  assert.equal(relay.slots.size, 0);
});

test('an observation is relayed only from its own page, cleaned', () => {
  const opts = { cleanUrl: CW.cleanUrl, maxRegion: 65536, reasons: CW.EYE.REASONS };
  const msg = { html: '<div>x</div>', reason: 'setting', key: 'linkedin#0', url: 'https://www.linkedin.com/a/b?token=SECRET#f' };
  const ok = checkObservation(msg, 'https://www.linkedin.com/feed/', opts);
  assert.deepEqual(ok, { key: 'setting linkedin#0', payload: { url: 'https://www.linkedin.com/a/b', html: '<div>x</div>', reason: 'setting' } });
  for (const bad of [{ url: 'https://evil.example/' }, { url: 'http://www.linkedin.com/' }, { reason: 'other' },
    { html: '' }, { html: 'x'.repeat(65537) }, { key: 5 }, { url: 'not a url' }]) {
    assert.equal(checkObservation({ ...msg, ...bad }, 'https://www.linkedin.com/feed/', opts), null, JSON.stringify(bad).slice(0, 80));
  }
});

const RULES = {
  version: '2026.12.01',
  rules: [
    { id: 'linkedin.genai-training', hosts: ['www.linkedin.com', 'linkedin.com'],
      setting: { labels: ['Use my data for training content creation AI models'], pages: [] },
      notices: { about: ['generative AI'], hosts: ['www.linkedin.com'] } },
    { id: 'google.gemini-activity', hosts: ['myactivity.google.com'],
      setting: { labels: ['Keep Activity'], name_states: { 'Turn off your Keep Activity setting': 'training' }, pages: ['/product/gemini'] } },
    { id: 'meta.ai-training', hosts: ['www.facebook.com'], notices: { about: ['AI at Meta'] } },
    { id: 'x.grok-training', hosts: ['x.com', 'api.x.com'], setting: { labels: ['Grok'] } },
    { id: 'newco.training', hosts: ['app.newco.example', '*.newco.example'], setting: { labels: ['Train on my work'] } },
    { id: 'bad' }, null,
  ],
};

test('what the page eye looks for on each host follows the rules in force', () => {
  const c = compactRules(RULES, CW.norm);
  assert.equal(c.rules.length, 5);
  const li = eyeConfig(c, 'linkedin.com', CW.hostMatches);
  assert.deepEqual(li.settings, [{ id: 'linkedin.genai-training', phrases: ['use my data for training content creation ai models'], pages: [] }]);
  assert.deepEqual(eyeConfig(c, 'linkedin.com', CW.hostMatches).notices, []); // notices only on www.linkedin.com
  assert.deepEqual(eyeConfig(c, 'www.linkedin.com', CW.hostMatches).notices.map((n) => n.about), [['generative ai']]);
  const g = eyeConfig(c, 'myactivity.google.com', CW.hostMatches);
  assert.deepEqual(g.settings[0].phrases, ['keep activity', 'turn off your keep activity setting']);
  assert.deepEqual(g.settings[0].pages, ['/product/gemini']);
  assert.equal(eyeConfig(c, 'example.org', CW.hostMatches), null);
  assert.ok(isApiHost('api.x.com') && isApiHost('public-api.wordpress.com') && !isApiHost('apis.example') && !isApiHost('x.com'));
  // hosts the manifest does not list: run-time content scripts, once the user allows them
  const statics = ['www.linkedin.com', 'linkedin.com', 'x.com', 'myactivity.google.com', '*.facebook.com'];
  assert.deepEqual(extraHosts(c, statics, CW.hostMatches), ['*.newco.example', 'app.newco.example']);
});

test('run-time content scripts: registered for allowed extra hosts, updated, removed', async () => {
  const c = compactRules(RULES, CW.norm);
  const granted = new Set(['https://app.newco.example/*']);
  const calls = [];
  let registered = [];
  const scripting = {
    registerContentScripts: async (s) => { calls.push('register'); registered = s; },
    updateContentScripts: async (s) => { calls.push('update'); registered = s; },
    unregisterContentScripts: async () => { calls.push('unregister'); registered = []; },
    getRegisteredContentScripts: async () => registered,
  };
  const dyn = new DynamicScripts({ scripting, permissions: { contains: async ({ origins }) => granted.has(origins[0]) },
    files: ['lib/common.js', 'content/eye.js', 'content/banner.js'], staticHosts: ['www.linkedin.com', 'linkedin.com', 'x.com',
      'myactivity.google.com', 'www.facebook.com'], hostMatches: CW.hostMatches });
  assert.deepEqual(await dyn.sync(c), { allowed: ['app.newco.example'], missing: ['*.newco.example'] });
  assert.deepEqual(registered[0].matches, ['https://app.newco.example/*']);
  assert.deepEqual(registered[0].js, ['lib/common.js', 'content/eye.js', 'content/banner.js']);
  granted.add('https://*.newco.example/*');
  await dyn.sync(c);
  assert.deepEqual(registered[0].matches, ['https://*.newco.example/*', 'https://app.newco.example/*']);
  granted.clear();
  await dyn.sync(c);
  assert.deepEqual(calls, ['register', 'update', 'unregister']);
});

class FakeSocket {
  static OPEN = 1;
  static CONNECTING = 0;
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }

  send(t) { this.sent.push(t); }

  close() { this.readyState = 3; this.closed = true; }
}

test('the socket pings, notices a silent server, and never reports a close it caused itself', async () => {
  FakeSocket.made = [];
  let now = 0;
  const events = [];
  let tickets = 0;
  const s = new LiveSocket({ WebSocketImpl: FakeSocket, now: () => now, heartbeatMs: 5, staleMs: 50,
    ticketUrl: async (base) => `${base}/v1/ws?ticket=T${(tickets += 1)}`,
    onOpen: () => events.push('open'), onMessage: (m) => events.push(m.type), onClose: () => events.push('close') });
  assert.ok(await s.open('http://127.0.0.1:9', 'a b'));
  const sock = FakeSocket.made[0];
  assert.equal(sock.url, 'ws://127.0.0.1:9/v1/ws?ticket=T1'); // a one-time ticket, never the token
  assert.ok((await s.open('http://127.0.0.1:9', 'a b')) && FakeSocket.made.length === 1); // same settings: same socket
  assert.equal(tickets, 1);
  sock.readyState = 1;
  sock.onopen();
  sock.onmessage({ data: '{"type":"hello","warnings":[]}' });
  sock.onmessage({ data: 'not json' });
  await new Promise((r) => setTimeout(r, 12));
  assert.ok(sock.sent.includes('{"type":"ping"}'));
  now = 100; // nothing heard for longer than staleMs
  await new Promise((r) => setTimeout(r, 12));
  assert.ok(sock.closed);
  sock.onclose();
  assert.deepEqual(events, ['open', 'hello', 'close']);
  await s.open('http://127.0.0.1:9', 'other');
  const second = FakeSocket.made[1];
  assert.equal(second.url, 'ws://127.0.0.1:9/v1/ws?ticket=T2');
  s.close();
  second.onclose(); // closed by us: no onClose, no reconnect
  assert.deepEqual(events, ['open', 'hello', 'close']);
});

test('refresh: unpaired, down (then backoff), unauthorized, connected', async () => {
  const store = new StateStore(new SessionArea(new SlowArea()));
  let settings = { apiBase: 'http://127.0.0.1:9', token: '' };
  let answers = {};
  const timers = [];
  const socket = { opened: 0, closed: 0, onOpen: null, isOpenFor: () => false, open() { this.opened += 1; return true; },
    close() { this.closed += 1; } };
  const sync = new Sync({ state: store, getSettings: async () => settings, socket, backoff: new Backoff({ random: () => 0.5 }),
    sanitize, apiFetch: async (base, path) => {
      const a = answers[path.split('?')[0]];
      if (a instanceof Error) throw a;
      return a;
    }, setTimer: (fn, ms) => { timers.push(ms); return timers.length; }, clearTimer: () => {} });
  await sync.refresh();
  assert.equal((await store.load()).conn, 'unpaired');
  settings = { ...settings, token: 'T' };
  answers = { '/v1/health': new ApiError('down', 'No answer') };
  await sync.refresh();
  assert.equal((await store.load()).conn, 'down');
  assert.deepEqual(timers, [1000]);
  answers = { '/v1/health': { version: '1', rules: 21 }, '/v1/warnings': new ApiError('unauthorized', 'no', 401) };
  await sync.refresh();
  assert.equal((await store.load()).conn, 'unauthorized');
  answers = { '/v1/health': { version: '1', rules: 21, proxy_port: 8080 }, '/v1/warnings': { warnings: [warning('a', ['x.com'])] } };
  await Promise.all([sync.refresh(), sync.refresh()]); // a second call during the first: one more run, not two at once
  const st = await store.load();
  assert.equal(st.conn, 'connecting');
  assert.equal(st.warnings.length, 1);
  assert.equal(st.proxyPort, 8080);
  assert.equal(socket.opened, 2);
  socket.onOpen();
  await tick();
  await tick();
  await tick();
  assert.equal((await store.load()).conn, 'connected');
});

test('the report tab opens with a one-time ticket, never the token, in its URL', async () => {
  const calls = [];
  const opened = [];
  const actions = new Actions({
    state: null, getSettings: async () => ({ apiBase: 'http://127.0.0.1:9', token: 'SECRET-TOKEN' }),
    apiFetch: async (base, path, opts) => { calls.push([path, opts]); return { ticket: 'T1', url: '/report?ticket=T1', expires_in: 60 }; },
    tabs: { create: async (props) => opened.push(props.url) }, routing: null, sanitize: (w) => w, CW: {},
  });
  await actions.openReport();
  assert.deepEqual(opened, ['http://127.0.0.1:9/report?ticket=T1']);
  assert.deepEqual(calls, [['/v1/tickets?for=report', { token: 'SECRET-TOKEN', method: 'POST' }]]); // token in a header
});
