// The status that tells the truth (issue 15 part 4) and the first-run checklist (part 5): status.js's pure
// functions from facts, the self-test's reading of a failed fetch, the PAC applied again when consentwatch comes
// back, and the health facts the sync keeps. node --test; tests/test_extension_unit.py runs it from pytest.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import '../../extension/lib/common.js';
import { SELFTEST_FRESH_MS, SELFTEST_HOST, checklist, computeStatus, freshSelftest, iconView, platformEyes, refusedHosts,
  tabMark } from '../../extension/background/status.js';
import { SelfTest, selftestUrlOk } from '../../extension/background/selftest.js';
import { Routing, reappliedPac } from '../../extension/background/routing.js';
import { Sync, healthFacts } from '../../extension/background/sync.js';
import { SessionArea, StateStore } from '../../extension/background/state.js';
import { Backoff } from '../../extension/background/backoff.js';
import { ApiError } from '../../extension/background/api.js';
import { compactRules } from '../../extension/background/rules.js';

const NOW = 10_000_000;
const URL_ = `https://${SELFTEST_HOST}/`;
const good = Object.freeze({
  backend: 'up', conn: 'connected', paired: true, lastError: null, apiBase: 'http://127.0.0.1:8765',
  routing: { wanted: true, enabled: true, blockedBy: null, error: null },
  selftest: { outcome: 'ok', at: NOW - 1000, detail: null }, tlsFailures: {}, pageEye: { granted: true },
  browser: 'chromium', now: NOW,
});
const facts = (over) => ({ ...good, ...over });

test('all facts good, and only then: "Watching"', () => {
  const s = computeStatus(good);
  assert.equal(s.verdict, 'watching');
  assert.equal(s.reason, 'ok');
  assert.deepEqual(s.cautions, []);
  assert.equal(s.action, null);
});

test('each failing fact gives "not watching", its reason and the one action that fixes it', () => {
  const cases = [
    [{ backend: 'down', conn: 'down' }, 'backend-down', { kind: 'command', command: 'consentwatch run' }],
    [{ conn: 'down' }, 'backend-down', { kind: 'command', command: 'consentwatch run' }],
    [{ paired: false, conn: 'unpaired' }, 'unpaired', { kind: 'button', id: 'pair' }],
    [{ conn: 'unauthorized' }, 'unauthorized', { kind: 'button', id: 'pair' }],
    [{ conn: 'error', lastError: 'boom' }, 'error', { kind: 'button', id: 'retry' }],
    [{ routing: { wanted: false, enabled: false }, selftest: null }, 'routing-off', { kind: 'button', id: 'routing-on' }],
    [{ routing: { wanted: true, enabled: false, error: 'refused' }, selftest: null }, 'routing-failed', { kind: 'button', id: 'routing-on' }],
    [{ routing: { wanted: true, enabled: false, blockedBy: 'Another extension controls your proxy settings.' }, selftest: null },
      'routing-blocked', { kind: 'text' }],
    [{ routing: { wanted: false, enabled: false, blockedBy: 'Your browser’s proxy is set by a policy or a command-line flag.' },
      selftest: null }, 'routing-blocked', { kind: 'text' }],
    [{ selftest: { outcome: 'untrusted', at: NOW - 10 } }, 'ca-untrusted',
      { kind: 'command', command: 'consentwatch trust --browser chromium', then: 'then restart the browser' }],
    [{ selftest: { outcome: 'bypassed', at: NOW - 10 } }, 'route-bypassed', { kind: 'button', id: 'reapply' }],
    [{ selftest: { outcome: 'error', at: NOW - 10, detail: 'x' } }, 'selftest-error', { kind: 'button', id: 'reapply' }],
  ];
  for (const [over, reason, action] of cases) {
    const s = computeStatus(facts(over));
    assert.equal(s.verdict, 'not-watching', reason);
    assert.equal(s.reason, reason);
    for (const [k, v] of Object.entries(action)) assert.equal(s.action[k], v, `${reason}: action.${k}`);
    assert.ok(s.title && s.detail, reason);
  }
  // Firefox without the private-windows permission: the routing module's words (where to allow it) are the detail
  const pb = computeStatus(facts({ browser: 'firefox', selftest: null,
    routing: { wanted: false, enabled: false, blockedBy: 'Firefox lets consentwatch route the platforms only if … → Allow.' } }));
  assert.deepEqual([pb.reason, pb.title, pb.action], ['routing-blocked', 'routing is not allowed yet', null]);
  assert.match(pb.detail, /→ Allow/);
  // Firefox is told about its own store
  assert.equal(computeStatus(facts({ browser: 'firefox', selftest: { outcome: 'untrusted', at: NOW } })).action.command,
    'consentwatch trust --browser firefox');
});

test('never "Watching" without a recent passed self-test', () => {
  assert.equal(computeStatus(facts({ selftest: null })).verdict, 'checking');
  const stale = { outcome: 'ok', at: NOW - SELFTEST_FRESH_MS - 1 };
  assert.equal(freshSelftest(stale, NOW), null);
  assert.equal(computeStatus(facts({ selftest: stale })).verdict, 'checking');
  assert.equal(computeStatus(facts({ selftest: { outcome: 'ok', at: NOW + 60_000 } })).verdict, 'checking'); // from the future
  assert.equal(computeStatus(facts({ backend: null, conn: 'starting', selftest: null })).verdict, 'checking');
  // a stale self-test does not hide that routing is off
  assert.equal(computeStatus(facts({ routing: { wanted: false }, selftest: stale })).reason, 'routing-off');
  // whatever the sync says, a bad fact earlier in the order wins over a passed self-test
  assert.equal(computeStatus(facts({ backend: 'down', conn: 'down' })).verdict, 'not-watching');
  assert.equal(computeStatus(facts({ conn: 'unauthorized' })).verdict, 'not-watching');
});

test('a passed self-test is the proof whoever holds the proxy setting; a refusal says "certificate" even so', () => {
  const mine = computeStatus(facts({ routing: { wanted: false, enabled: false, blockedBy: 'Your browser’s proxy is set by a policy or a command-line flag.' } }));
  assert.equal(mine.verdict, 'watching');
  const refused = computeStatus(facts({ routing: { wanted: false, enabled: false }, selftest: { outcome: 'untrusted', at: NOW } }));
  assert.equal(refused.reason, 'ca-untrusted');
});

test('recent TLS refusals for rule hosts and a page eye without access are cautions, not a false "not watching"', () => {
  assert.deepEqual(refusedHosts({ [SELFTEST_HOST]: 4, 'www.linkedin.com': 2, 'x.com': 5, bad: 'x', zero: 0 }),
    [{ host: 'x.com', count: 5 }, { host: 'www.linkedin.com', count: 2 }]);
  const s = computeStatus(facts({ tlsFailures: { 'www.linkedin.com': 2 }, pageEye: { granted: false } }));
  assert.equal(s.verdict, 'watching');
  assert.deepEqual(s.cautions.map((c) => c.id), ['tls-refused', 'page-eye']);
  assert.match(s.cautions[0].text, /www\.linkedin\.com/);
  assert.equal(s.cautions[0].action.command, 'consentwatch trust --browser chromium');
  assert.equal(s.cautions[1].action.id, 'grant-pages');
});

test('the checklist: the five steps in order, each unchecked one with its next action', () => {
  const fresh = checklist(facts({ backend: 'down', conn: 'down', paired: false, routing: { wanted: false }, selftest: null,
    pageEye: { granted: false } }));
  assert.deepEqual(fresh.items.map((i) => i.id), ['backend', 'paired', 'route', 'certificate', 'page-eye']);
  assert.deepEqual(fresh.items.map((i) => i.done), [false, false, false, false, false]);
  assert.equal(fresh.items[0].action.command, 'consentwatch run');
  // nothing at the default address and no token: pairing is offered (it finds a consentwatch on other ports)
  assert.equal(fresh.items[1].action.id, 'pair');
  assert.match(fresh.items[2].action.text, /Waits for: pairing/);
  assert.equal(fresh.items[4].action.id, 'grant-pages');
  assert.equal(fresh.done, false);

  const running = checklist(facts({ paired: false, conn: 'unpaired', routing: { wanted: false }, selftest: null }));
  assert.deepEqual(running.items.map((i) => i.done), [true, false, false, false, true]);
  assert.equal(running.items[1].action.id, 'pair');

  const paired = checklist(facts({ routing: { wanted: false }, selftest: null }));
  assert.deepEqual(paired.items.map((i) => i.done), [true, true, false, false, true]);
  assert.equal(paired.items[2].action.id, 'routing-on');

  const untrusted = checklist(facts({ selftest: { outcome: 'untrusted', at: NOW } }));
  assert.deepEqual(untrusted.items.map((i) => i.done), [true, true, true, false, true]);
  assert.equal(untrusted.items[3].action.command, 'consentwatch trust --browser chromium');

  const pending = checklist(facts({ selftest: null }));
  assert.equal(pending.items[3].done, false);
  assert.equal(pending.items[3].detail, 'Checking…');

  // consentwatch stopped after it all worked: the saved token and the routing are not called missing
  const stopped = checklist(facts({ backend: 'down', conn: 'down', routing: { wanted: true, enabled: true } }));
  assert.deepEqual(stopped.items.map((i) => i.done), [false, false, false, false, true]);
  assert.equal(stopped.items[1].detail, 'A token is saved: checked once consentwatch answers.');
  assert.match(stopped.items[2].detail, /^Routing is on: checked once/);
  assert.match(stopped.items[1].action.text, /Waits for: consentwatch running/); // paired: nothing to pair again
  assert.equal(fresh.items[1].detail, 'No token yet.');
  assert.equal(fresh.items[2].detail, 'Routing is off.');

  const all = checklist(good);
  assert.ok(all.done && all.items.every((i) => i.done && i.action === null));
  assert.equal(all.status.verdict, 'watching');
});

test('the icon: grey with "off" when not watching (the warnings count wins), a tab mark when a page was not watched', () => {
  const off = iconView(computeStatus(facts({ routing: { wanted: false }, selftest: null })), 0);
  assert.deepEqual([off.text, off.grey], ['off', true]);
  assert.match(off.title, /not watching — routing is off/);
  const offWithWarnings = iconView(computeStatus(facts({ backend: 'down', conn: 'down' })), 2);
  assert.deepEqual([offWithWarnings.text, offWithWarnings.grey], ['2', true]);
  const unpaired = iconView(computeStatus(facts({ paired: false, conn: 'unpaired' })), 3);
  assert.equal(unpaired.text, 'off'); // warnings of a pairing that is gone are not counted
  const on = iconView(computeStatus(good), 0);
  assert.deepEqual([on.text, on.grey, on.title], ['', false, 'consentwatch: watching']);
  assert.equal(iconView(computeStatus(good), 1).title, 'consentwatch: watching · 1 AI-training warning');
  const checking = iconView(computeStatus(facts({ selftest: null })), 0);
  assert.deepEqual([checking.text, checking.grey], ['', false]);

  assert.equal(tabMark(computeStatus(good)), null);
  const mark = tabMark(computeStatus(facts({ selftest: { outcome: 'untrusted', at: NOW } })));
  assert.equal(mark.text, '!');
  assert.match(mark.title, /did not watch this page: certificate not trusted/);
  assert.match(tabMark(computeStatus(facts({ selftest: null }))).title, /not proven yet/);
});

test('per platform, the eyes that can see it (network and markup are both the proxy) and whether each works now', () => {
  const body = { version: 'v', rules: [
    { id: 'a.1', platform: 'linkedin', platform_name: 'LinkedIn', hosts: ['www.linkedin.com'],
      seen_via: [{ eye: 'markup', evidence: 'unverified' }, { eye: 'page', evidence: 'reconstructed' }] },
    { id: 'b.1', platform: 'meta', platform_name: 'Meta', hosts: ['www.facebook.com'], seen_via: [{ eye: 'page' }, { eye: 'evil' }] },
    { id: 'c.1', platform: 'x', platform_name: 'X', hosts: ['x.com'], seen_via: [{ eye: 'network' }] },
    { id: 'c.2', platform: 'x', platform_name: 'X', hosts: ['x.com'], seen_via: [{ eye: 'page' }] },
  ] };
  const compact = compactRules(body, CW.norm);
  assert.deepEqual(compact.rules[0].seenVia, ['markup', 'page']);
  assert.deepEqual(compact.rules[1].seenVia, ['page']);
  const watching = platformEyes(compact.rules, computeStatus(good), true);
  assert.deepEqual(watching.map((p) => [p.name, p.eyes.map((e) => `${e.eye}:${e.working}`)]), [
    ['LinkedIn', ['network:true', 'page:true']], ['Meta', ['page:true']], ['X', ['network:true', 'page:true']]]);
  const off = platformEyes(compact.rules, computeStatus(facts({ backend: 'down', conn: 'down' })), false);
  assert.deepEqual(off[0].eyes.map((e) => e.working), [false, false]);
});

test('the self-test: an answer proves the route; a failure is "untrusted" only if the proxy counted a refusal', async () => {
  assert.ok(selftestUrlOk(URL_));
  for (const bad of ['http://selftest.consentwatch.invalid/', 'https://evil.example/', `${URL_}x`, `${URL_}?q=1`, 'nope', null]) {
    assert.ok(!selftestUrlOk(bad), String(bad));
  }
  const run = async (fetchImpl, refusals) => {
    const calls = [];
    const t = new SelfTest({ fetchImpl: async (url, init) => { calls.push([url, init]); return fetchImpl(); },
      refusals: async () => refusals.shift(), now: () => NOW, sleep: async () => {} });
    return { result: await t.run(URL_), calls };
  };
  const ok = await run(async () => ({ type: 'opaque', ok: false, status: 0 }), [{}]);
  assert.equal(ok.result.outcome, 'ok');
  assert.equal(ok.calls[0][1].mode, 'no-cors');
  assert.equal(ok.calls[0][1].credentials, 'omit');
  assert.equal(ok.calls[0][1].cache, 'no-store');

  const refuse = () => { throw new TypeError('Failed to fetch'); };
  assert.equal((await run(refuse, [{}, { [SELFTEST_HOST]: 1 }])).result.outcome, 'untrusted');
  assert.equal((await run(refuse, [{ [SELFTEST_HOST]: 3 }, { [SELFTEST_HOST]: 4 }])).result.outcome, 'untrusted');
  // the proxy noted the refusal a moment after the fetch failed: the second look finds it
  assert.equal((await run(refuse, [{}, {}, { [SELFTEST_HOST]: 1 }])).result.outcome, 'untrusted');
  assert.equal((await run(refuse, [{}, {}, {}])).result.outcome, 'bypassed');
  // a refusal counted before this attempt (routing since switched off: the request never reached the proxy) is not
  // this request's: without a new one it is not "untrusted"
  assert.equal((await run(refuse, [{ [SELFTEST_HOST]: 3 }, { [SELFTEST_HOST]: 3 }, { [SELFTEST_HOST]: 3 }])).result.outcome, 'bypassed');
  // refusals of other hosts say nothing about this request
  assert.equal((await run(refuse, [{}, { 'x.com': 2 }, { 'x.com': 2 }])).result.outcome, 'bypassed');
  const gone = await run(refuse, [{}, undefined]);
  assert.equal(gone.result.outcome, 'bypassed'); // undefined health: nothing counted
  const t = new SelfTest({ fetchImpl: refuse, refusals: async () => { throw new ApiError('down', 'x'); }, now: () => NOW, sleep: async () => {} });
  assert.equal((await t.run(URL_)).outcome, 'error');
  const notFetched = [];
  const t2 = new SelfTest({ fetchImpl: async (u) => notFetched.push(u), refusals: async () => ({}), now: () => NOW });
  assert.equal((await t2.run('https://evil.example/')).outcome, 'error');
  assert.deepEqual(notFetched, []);
});

function proxyStandIn() {
  let level = 'controllable_by_this_extension';
  let value = { mode: 'system' };
  const log = [];
  const proxy = { settings: {
    get: async () => ({ levelOfControl: level, value }),
    set: async (v) => { log.push('set'); value = v.value; level = 'controlled_by_this_extension'; },
    clear: async () => { log.push('clear'); value = { mode: 'system' }; level = 'controllable_by_this_extension'; },
  } };
  return { proxy, log };
}

test('routing: with force the PAC is set again as a different value (same routes), so the browser sees a change', async () => {
  const pac = 'function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:9; DIRECT"; }';
  const { proxy, log } = proxyStandIn();
  const local = { data: {}, async get(k) { return { [k]: this.data[k] }; }, async set(o) { Object.assign(this.data, o); } };
  const routing = new Routing({ proxy, local, isFirefox: false, apiFetch: async () => pac,
    getSettings: async () => ({ apiBase: 'http://127.0.0.1:1', token: 't' }) });
  await routing.set(true);
  assert.deepEqual(log, ['set']);
  assert.equal(await routing.sync('http://127.0.0.1:1', 't'), false); // nothing changed: left alone
  assert.deepEqual(log, ['set']);
  assert.equal(await routing.sync('http://127.0.0.1:1', 't', { force: true }), true);
  assert.deepEqual(log, ['set', 'set']); // never cleared in between: no moment without routing
  const applied = (await proxy.settings.get()).value.pacScript.data;
  assert.notEqual(applied, pac);
  assert.ok(applied.startsWith(pac) && /\n\/\/ consentwatch: re-applied \d{4}-[^\n]+\n$/.test(applied), applied);
  assert.equal(reappliedPac(applied, new Date(0)), `${pac}\n// consentwatch: re-applied 1970-01-01T00:00:00.000Z\n`); // one line, not a pile
  assert.equal(local.data.routing.pac, pac); // what the API served, to compare with next time
  assert.equal(await routing.sync('http://127.0.0.1:1', 't'), false);
  assert.equal((await routing.status()).enabled, true);
  await routing.set(false);
  assert.equal(await routing.sync('http://127.0.0.1:1', 't', { force: true }), false); // off stays off
});

test('sync: health is asked before pairing; consentwatch coming back forces the PAC and a self-test', async () => {
  const store = new StateStore(new SessionArea(null));
  let settings = { apiBase: 'http://127.0.0.1:9', token: '' };
  let answers = { '/v1/health': { version: '1', rules: 3, selftest_url: URL_, tls_failures: { 'x.com': 2, [SELFTEST_HOST]: 1, evil: -1 } } };
  const routed = [];
  const after = [];
  const socket = { onOpen: null, onClose: null, isOpenFor: () => true, open() { return true; }, close() {} };
  const sync = new Sync({ state: store, getSettings: async () => settings, socket, backoff: new Backoff({ random: () => 0.5 }),
    sanitize: (w) => CW.sanitizeWarning(w), apiFetch: async (base, path) => {
      const a = answers[path.split('?')[0]];
      if (a instanceof Error) throw a;
      return a;
    }, syncRouting: async (b, t, opts) => routed.push(opts.force), afterSync: async (x) => after.push(x.force),
    setTimer: () => 1, clearTimer: () => {} });
  await sync.refresh();
  let st = await store.load();
  assert.deepEqual([st.conn, st.backend, st.selftestUrl], ['unpaired', 'up', URL_]);
  assert.deepEqual(st.tlsFailures, { 'x.com': 2, [SELFTEST_HOST]: 1 });

  settings = { ...settings, token: 'T' };
  answers = { ...answers, '/v1/warnings': { warnings: [] } };
  await sync.refresh();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routed, [true]); // a worker that starts applies the PAC once: it cannot know what it missed
  assert.deepEqual(after, [true]);
  await sync.refresh();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routed, [true, false]);

  answers = { '/v1/health': new ApiError('down', 'No answer') };
  await sync.refresh();
  st = await store.load();
  assert.deepEqual([st.conn, st.backend, st.selftest], ['down', 'down', null]);

  answers = { '/v1/health': { version: '1', selftest_url: URL_ }, '/v1/warnings': { warnings: [] } };
  await sync.refresh();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routed, [true, false, true]); // back after being down: the PAC again, at once
  assert.deepEqual(after, [true, false, true]);
  await sync.refresh();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routed, [true, false, true, false]);

  socket.onClose(); // the socket dropped (consentwatch restarted between two polls): the next look forces too
  await sync.refresh();
  await new Promise((r) => setImmediate(r));
  assert.equal(routed.at(-1), true);

  assert.deepEqual(healthFacts(null), { backend: 'down', tlsFailures: {}, selftestUrl: null });
  assert.equal(healthFacts({ selftest_url: 5 }).selftestUrl, null);
});

test('a platform page that loads is reported for its tab mark; the banner does not wait for it', async () => {
  const { makeHandlers } = await import('../../extension/background/messages.js');
  const loaded = [];
  let release;
  const handlers = makeHandlers({
    tabs: { track: async () => {} }, warningsFor: async () => [], eyeFor: async () => null, observe: async () => true,
    actions: {}, routing: {}, refresh: async () => {}, openOptions: async () => {},
    pageLoaded: (ctx) => { loaded.push(ctx); return new Promise((r) => { release = r; }); }, // a slow self-test
  });
  const ctx = { tabId: 7, hostname: 'www.linkedin.com', url: 'https://www.linkedin.com/x' };
  assert.deepEqual(await handlers.page['page:get']({ type: 'page:get' }, ctx), { warnings: [] }); // answered at once
  assert.deepEqual(loaded, [ctx]);
  release();
});
