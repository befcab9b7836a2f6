/* consentwatch service worker (Chrome) / background script (Firefox): an ES module that wires the parts in
 * background/ together. Listeners are registered at the top level, as MV3 requires.
 *
 * state.js    the state mirrored into storage.session      badge.js    the toolbar badge
 * api.js      the only code that talks to the API          socket.js   the WebSocket and its heartbeat
 * sync.js     health, warnings, rules, reconnect/backoff   routing.js  the PAC routing switch
 * tabs.js     tabs that show a platform page               rules.js    what the page eye looks for, per host
 * observe.js  the page eye's regions to the API            actions.js  dismiss, open a setting, test, popup view
 * messages.js the handler tables (the allow-list)            pairing.js  one-click pairing (native messaging)
 * Talks to nothing but the consentwatch API on 127.0.0.1/localhost, and consentwatch's own pairing host. */

import './lib/common.js';
import { Actions } from './background/actions.js';
import { makeApiFetch, ticketUrl } from './background/api.js';
import { renderBadge } from './background/badge.js';
import { Backoff } from './background/backoff.js';
import { makeDispatcher, makeHandlers } from './background/messages.js';
import { ObservationRelay, checkObservation } from './background/observe.js';
import { Pairing, pairingHandlers } from './background/pairing.js';
import { Routing } from './background/routing.js';
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

/* ---------------------------------------------------------------- state, badge, tabs ------------ */

const warningsFor = async (hostname) => warningsForHost((await state.load()).warnings, hostname, CW.hostMatches);

state.listeners.push(async (next, cur, delta) => {
  await renderBadge(ext.action, next);
  if (delta.warnings && JSON.stringify(delta.warnings) !== JSON.stringify(cur.warnings)) {
    pushToTabs(tabs, (id, m) => ext.tabs.sendMessage(id, m),
      (host) => ({ type: CW.TO_PAGE.warnings, warnings: warningsForHost(next.warnings, host, CW.hostMatches) })).catch(() => {});
  }
});

const socket = new LiveSocket({ ticketUrl: (apiBase, token) => ticketUrl(apiFetch, apiBase, token, 'ws') });
const sync = new Sync({ state, getSettings, apiFetch, socket, backoff: new Backoff(), sanitize, syncRules,
  syncRouting: (apiBase, token) => routing.sync(apiBase, token) });

const actions = new Actions({ state, getSettings, apiFetch, tabs: ext.tabs, routing, sanitize, CW,
  pageScripts: async () => dynamic.split(await loadRules()) });

/* ---------------------------------------------------------------- messages ---------------------- */

const handlers = makeHandlers({ tabs, actions, routing, warningsFor, eyeFor, observe,
  refresh: (why) => sync.refresh(why), openOptions: () => ext.runtime.openOptionsPage() });
ext.runtime.onMessage.addListener(makeDispatcher(handlers, {
  extId: ext.runtime.id, extOrigin: ext.runtime.getURL(''), hostAllowed: pageHostAllowed,
}));

// One-click pairing: its own table, served the same way (from the extension's own pages only).
const pairing = new Pairing({
  sendNative: typeof ext.runtime.sendNativeMessage === 'function' ? (host, msg) => ext.runtime.sendNativeMessage(host, msg) : null,
  testConnection: (apiBase, token) => actions.testConnection(apiBase, token), session, local: ext.storage.local, CW,
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
});

if (ext.permissions && ext.permissions.onAdded) {
  const resync = () => loadRules().then((r) => dynamic.sync(r)).catch((e) => console.warn('consentwatch: content scripts', e));
  ext.permissions.onAdded.addListener(resync);
  ext.permissions.onRemoved.addListener(resync);
}

ext.runtime.onInstalled.addListener(() => sync.refresh('installed'));
ext.runtime.onStartup.addListener(() => sync.refresh('startup'));

(async () => {
  const existing = await ext.alarms.get(POLL_ALARM);
  if (!existing) ext.alarms.create(POLL_ALARM, { periodInMinutes: POLL_MINUTES, delayInMinutes: POLL_MINUTES });
  await renderBadge(ext.action, await state.load());
  sync.refresh('wake');
})();
