/* consentwatch service worker (Chrome) / background script (Firefox): an ES module that wires the parts in
 * background/ together. Listeners are registered at the top level, as MV3 requires.
 *
 * state.js    the state mirrored into storage.session      badge.js    the toolbar badge
 * api.js      the only code that talks to the API          socket.js   the WebSocket and its heartbeat
 * sync.js     health, warnings, rules, reconnect/backoff   routing.js  the PAC routing switch
 * tabs.js     tabs that show a platform page               rules.js    what the page eye looks for, per host
 * observe.js  the page eye's regions to the API            actions.js  dismiss, open a setting, test, popup view
 * messages.js the handler tables (the allow-list)           status.js   the one status, from facts (pure)
 * selftest.js proves the route and the CA (the self-test page) pairing.js one-click pairing (native messaging)
 * Talks to nothing but the consentwatch API on 127.0.0.1/localhost, and consentwatch's own pairing host. */

import './lib/common.js';
import { Actions } from './background/actions.js';
import { makeApiFetch, ticketUrl } from './background/api.js';
import { markTab, renderIcon } from './background/badge.js';
import { Backoff } from './background/backoff.js';
import { makeDispatcher, makeHandlers } from './background/messages.js';
import { ObservationRelay, checkObservation } from './background/observe.js';
import { Pairing, pairingHandlers } from './background/pairing.js';
import { Routing } from './background/routing.js';
import { SelfTest } from './background/selftest.js';
import { checklist, computeStatus, freshSelftest, iconView, platformEyes, tabMark } from './background/status.js';
import { DynamicScripts, RULES_KEY, compactRules, eyeConfig, isApiHost } from './background/rules.js';
import { LiveSocket } from './background/socket.js';
import { EMPTY_STATE, SessionArea, StateStore } from './background/state.js';
import { Sync, readSettings } from './background/sync.js';
import { TabTracker, pushToTabs, warningsForHost } from './background/tabs.js';

const CW = globalThis.CW;
const ext = globalThis.browser ?? globalThis.chrome;
const IS_FIREFOX = typeof globalThis.browser !== 'undefined' && typeof ext.runtime.getBrowserInfo === 'function';
const POLL_ALARM = 'consentwatch-poll';
const POLL_MINUTES = 1;

// Where the manifest's content scripts run, and what they are (a run-time registration uses the same files).
const MANIFEST_SCRIPTS = ext.runtime.getManifest().content_scripts || [];
const STATIC_HOSTS = MANIFEST_SCRIPTS.flatMap((cs) => cs.matches || [])
  .map((m) => (m.match(/^https:\/\/([^/]+)\//) || [])[1]).filter(Boolean);
const CONTENT_FILES = MANIFEST_SCRIPTS.length ? MANIFEST_SCRIPTS[0].js : [];
const PAGE_ORIGINS = [...new Set(MANIFEST_SCRIPTS.flatMap((cs) => cs.matches || []))];
const BROWSER = IS_FIREFOX ? 'firefox' : 'chromium';
const MARKS_KEY = 'cwTabMarks'; // tab id -> the mark of a rule-host page loaded while not watched

const session = new SessionArea(ext.storage.session);
const state = new StateStore(session, { initial: { ...EMPTY_STATE, apiBase: CW.DEFAULT_API_BASE } });
const apiFetch = makeApiFetch();
const getSettings = () => readSettings(ext.storage.local, CW);
const sanitize = (w) => CW.sanitizeWarning(w);
const tabs = new TabTracker(session);
const routing = new Routing({ proxy: ext.proxy, local: ext.storage.local, isFirefox: IS_FIREFOX, apiFetch, getSettings,
  privateAllowed: () => ext.extension.isAllowedIncognitoAccess() });
const dynamic = new DynamicScripts({ scripting: ext.scripting, permissions: ext.permissions, files: CONTENT_FILES,
  staticHosts: STATIC_HOSTS, hostMatches: CW.hostMatches });

/* ---------------------------------------------------------------- rules and the page eye -------- */

const loadRules = async () => (await session.get(RULES_KEY)) || null;
let dynamicSynced = false;

async function eyeFor(hostname) {
  return eyeConfig(await loadRules(), hostname, CW.hostMatches);
}

async function syncRules(apiBase, token, health) {
  const cached = await loadRules();
  const same = cached && cached.apiBase === apiBase && health.rules_version && cached.version === health.rules_version;
  let rules = cached;
  if (!same) {
    rules = { ...compactRules(await apiFetch(apiBase, '/v1/rules', { token }), CW.norm), apiBase };
    await session.set({ [RULES_KEY]: rules });
    if (!cached || cached.version !== rules.version || cached.apiBase !== apiBase) {
      pushToTabs(tabs, (id, m) => ext.tabs.sendMessage(id, m),
        (host) => ({ type: CW.TO_PAGE.rules, eye: eyeConfig(rules, host, CW.hostMatches) })).catch(() => {});
    }
  }
  if (!same || !dynamicSynced) {
    dynamicSynced = true;
    await dynamic.sync(rules).catch((e) => console.warn('consentwatch: content scripts', e));
  }
}

/** Content scripts run on the manifest's hosts and on rule hosts the user allowed: messages from elsewhere drop. */
async function pageHostAllowed(hostname) {
  if (STATIC_HOSTS.some((p) => CW.hostMatches(hostname, p))) return true;
  const rules = await loadRules();
  return Boolean(rules) && !isApiHost(hostname) && rules.rules.some((r) => r.hosts.some((h) => CW.hostMatches(hostname, h)));
}

const relay = new ObservationRelay({
  post: async (payload) => {
    const { apiBase, token } = await getSettings();
    return apiFetch(apiBase, '/v1/observations', { token, method: 'POST', json: payload });
  },
});

async function observe(msg, ctx) {
  const checked = checkObservation(msg, ctx.url, { cleanUrl: CW.cleanUrl, maxRegion: 64 * 1024, reasons: CW.EYE.REASONS });
  if (!checked) throw new Error('not an observation');
  if (!(await eyeFor(ctx.hostname))) throw new Error('no rule watches this host');
  relay.submit(`${ctx.tabId} ${checked.key}`, checked.payload);
  return true;
}

/* ---------------------------------------------------------------- status, icon, tabs ------------- */

const warningsFor = async (hostname) => warningsForHost((await state.load()).warnings, hostname, CW.hostMatches);

/** May the page eye run on every manifest host? (Chromium's permissions.contains() says no for content-script
 * hosts it has granted, so the granted list is read instead.) */
async function pageEye() {
  try {
    const { origins = [] } = await ext.permissions.getAll();
    const all = origins.some((o) => o === '<all_urls>' || /^(\*|https):\/\/\*\/\*$/.test(o)); // every https host
    const missing = all ? [] : PAGE_ORIGINS.filter((o) => !origins.includes(o));
    return { granted: missing.length === 0, missing };
  } catch {
    return { granted: false, missing: PAGE_ORIGINS };
  }
}

/** The facts status.js computes the status from, as of now. */
async function gatherFacts(st = null, routingStatus = undefined) {
  const [cur, r, settings, eye] = await Promise.all([
    st || state.load(), routingStatus !== undefined ? routingStatus : routing.status().catch(() => null), getSettings(), pageEye(),
  ]);
  return {
    st: cur,
    facts: {
      backend: cur.backend ?? null, conn: cur.conn, paired: Boolean(settings.token), lastError: cur.lastError,
      apiBase: settings.apiBase, routing: r || {}, selftest: cur.selftest || null, tlsFailures: cur.tlsFailures || {},
      pageEye: eye, browser: BROWSER, now: Date.now(),
    },
  };
}

let lastIcon = null;
async function renderStatus(st = null) {
  const { st: cur, facts } = await gatherFacts(st);
  const view = iconView(computeStatus(facts), cur.warnings.length);
  const key = JSON.stringify(view);
  if (key === lastIcon) return;
  lastIcon = key;
  await renderIcon(ext.action, view);
}

const marks = () => session.get(MARKS_KEY).then((m) => m || {});

/** A rule-host page finished loading in a tab (its banner asked for warnings): mark it if nothing watched it. */
async function pageLoaded(ctx) {
  let { facts } = await gatherFacts();
  if (computeStatus(facts).verdict === 'checking') {
    // not proven either way yet (a browser that just started, restoring its tabs): ask now rather than mark a
    // page that was most likely read
    await proveRoute().catch(() => null);
    ({ facts } = await gatherFacts());
  }
  const mark = tabMark(computeStatus(facts));
  const all = await marks();
  if (mark) all[String(ctx.tabId)] = { host: ctx.hostname, title: mark.title, at: Date.now() };
  else delete all[String(ctx.tabId)];
  await session.set({ [MARKS_KEY]: all });
  await markTab(ext.action, ctx.tabId, mark);
}

/** What the popup and the first-run page show: the status, the checklist, the platforms' eyes, this tab's mark. */
async function describe(base, tabId) {
  const { facts } = await gatherFacts(null, base.routing);
  const status = computeStatus(facts);
  const rules = await loadRules();
  const tabMarkNow = tabId === null ? null : (await marks())[String(tabId)] || null;
  return {
    status,
    checklist: checklist(facts),
    platforms: platformEyes(rules ? rules.rules : [], status, facts.pageEye.granted),
    pageEye: facts.pageEye,
    browser: BROWSER,
    tab: tabMarkNow,
  };
}

state.listeners.push(async (next, cur, delta) => {
  await renderStatus(next);
  if (delta.warnings && JSON.stringify(delta.warnings) !== JSON.stringify(cur.warnings)) {
    pushToTabs(tabs, (id, m) => ext.tabs.sendMessage(id, m),
      (host) => ({ type: CW.TO_PAGE.warnings, warnings: warningsForHost(next.warnings, host, CW.hostMatches) })).catch(() => {});
  }
});

/* ---------------------------------------------------------------- the self-test ------------------ */

const selftest = new SelfTest({
  refusals: async () => {
    const { apiBase } = await getSettings();
    const health = await apiFetch(apiBase, '/v1/health');
    return (health && health.tls_failures) || {};
  },
});

// A passed self-test is repeated at this pace when asked (popup, first-run page); a failed one at once.
const RETEST_MS = 30_000;
// A new proxy setting reaches the browser's network stack asynchronously: a request sent at once may still
// take the old way.
const SETTLE_MS = 500;
const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

/** Runs the self-test when the last result is stale or failed (or always, with force), whoever holds the proxy
 * setting: routing off here does not mean nothing routes the platforms (a PAC the user set, a --proxy-server
 * flag), and only the self-test can tell. With no route the name it looks up cannot resolve (RFC 6761 .invalid). */
async function proveRoute({ force = false } = {}) {
  const r = (await routing.status().catch(() => null)) || {};
  const cur = await state.load();
  const paired = !['unpaired', 'unauthorized', 'down'].includes(cur.conn);
  if (cur.backend !== 'up' || !paired || !cur.selftestUrl) return null;
  const last = freshSelftest(cur.selftest, Date.now());
  if (!force && last && last.outcome === 'ok' && Date.now() - last.at < RETEST_MS) return last;
  if (force) await settle(); // force follows a routing change
  let result = await selftest.run(cur.selftestUrl);
  if (result.outcome === 'bypassed' && !force && r.enabled) {
    // routing is ours yet the page went DIRECT: the browser may be skipping a proxy it marked bad
    const { apiBase, token } = await getSettings();
    if (await routing.sync(apiBase, token, { force: true }).catch(() => false)) {
      await settle();
      result = await selftest.run(cur.selftestUrl);
    }
  }
  await state.update({ selftest: result });
  return result;
}

/* ---------------------------------------------------------------- sync -------------------------- */

const socket = new LiveSocket({ ticketUrl: (apiBase, token) => ticketUrl(apiFetch, apiBase, token, 'ws') });
const sync = new Sync({ state, getSettings, apiFetch, socket, backoff: new Backoff(), sanitize, syncRules,
  syncRouting: (apiBase, token, opts) => routing.sync(apiBase, token, opts),
  afterSync: ({ force }) => proveRoute({ force }) });

const actions = new Actions({ state, getSettings, apiFetch, tabs: ext.tabs, routing, sanitize, CW,
  pageScripts: async () => dynamic.split(await loadRules()), describe });

// The switch, then at once the proof (or the stale proof dropped, when switched off).
const routingSwitch = {
  set: async (enabled) => {
    try {
      return await routing.set(enabled);
    } finally {
      await state.update({ selftest: null });
      if (enabled) await proveRoute({ force: true }).catch((e) => console.warn('consentwatch: self-test', e));
      else renderStatus().catch(() => {});
    }
  },
};

// The first-run page asks every second or two; one real look every few seconds is enough.
let lastCheck = 0;
async function check() {
  if (Date.now() - lastCheck < 2_500) return;
  lastCheck = Date.now();
  await sync.refresh('check');
  await proveRoute();
}

async function reapply() {
  const { apiBase, token } = await getSettings();
  await routing.sync(apiBase, token, { force: true });
  await proveRoute({ force: true });
}

/* ---------------------------------------------------------------- messages ---------------------- */

const handlers = makeHandlers({ tabs, actions, routing: routingSwitch, warningsFor, eyeFor, observe, pageLoaded, check, reapply,
  refresh: async (why) => {
    await sync.refresh(why);
    await proveRoute();
  },
  openOptions: () => ext.runtime.openOptionsPage() });
ext.runtime.onMessage.addListener(makeDispatcher(handlers, {
  extId: ext.runtime.id, extOrigin: ext.runtime.getURL(''), hostAllowed: pageHostAllowed,
}));

// One-click pairing: its own table, served the same way (from the extension's own pages only).
const pairing = new Pairing({
  sendNative: typeof ext.runtime.sendNativeMessage === 'function' ? (host, msg) => ext.runtime.sendNativeMessage(host, msg) : null,
  testConnection: (apiBase, token) => actions.testConnection(apiBase, token), session, local: ext.storage.local, CW,
  // "Also turn routing on" in the confirmation: the switch itself; the proof follows without holding the answer up
  setRouting: async (enabled) => {
    await routing.set(enabled);
    await state.update({ selftest: null });
    proveRoute({ force: true }).catch((e) => console.warn('consentwatch: self-test', e));
  },
});
ext.runtime.onMessage.addListener(makeDispatcher(pairingHandlers(pairing), {
  extId: ext.runtime.id, extOrigin: ext.runtime.getURL(''), hostAllowed: () => false,
}));

// Nothing outside the extension may talk to it.
if (ext.runtime.onMessageExternal) ext.runtime.onMessageExternal.addListener(() => false);
if (ext.runtime.onConnectExternal) ext.runtime.onConnectExternal.addListener((port) => port.disconnect());

/* ---------------------------------------------------------------- lifecycle --------------------- */

ext.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && ('apiBase' in changes || 'token' in changes)) sync.restart();
});

ext.alarms.onAlarm.addListener((alarm) => {
  // The worker may have slept and lost its socket: poll over REST and reconnect.
  if (alarm.name === POLL_ALARM) sync.refresh('alarm');
});

ext.tabs.onRemoved.addListener((tabId) => {
  tabs.untrack(tabId).catch(() => {});
  marks().then((all) => {
    if (!(String(tabId) in all)) return null;
    delete all[String(tabId)];
    return session.set({ [MARKS_KEY]: all });
  }).catch(() => {});
});

// Another extension (or a policy) took the proxy setting, or gave it back: the status changes with it.
if (ext.proxy && ext.proxy.settings && ext.proxy.settings.onChange) {
  ext.proxy.settings.onChange.addListener(() => renderStatus().catch(() => {}));
}

if (ext.permissions && ext.permissions.onAdded) {
  const resync = () => {
    renderStatus().catch(() => {});
    return loadRules().then((r) => dynamic.sync(r)).catch((e) => console.warn('consentwatch: content scripts', e));
  };
  ext.permissions.onAdded.addListener(resync);
  ext.permissions.onRemoved.addListener(resync);
}

ext.runtime.onInstalled.addListener((details) => {
  // a new user lands on the checklist that walks them to "Watching"
  if (details && details.reason === 'install') ext.tabs.create({ url: ext.runtime.getURL('firstrun.html') }).catch(() => {});
  sync.refresh('installed');
});
ext.runtime.onStartup.addListener(() => sync.refresh('startup'));

(async () => {
  const existing = await ext.alarms.get(POLL_ALARM);
  if (!existing) ext.alarms.create(POLL_ALARM, { periodInMinutes: POLL_MINUTES, delayInMinutes: POLL_MINUTES });
  await renderStatus();
  sync.refresh('wake');
})();
