/* consentwatch service worker (Chrome) / background script (Firefox).
 *
 * Keeps one WebSocket to the local consentwatch API, mirrors its active warnings into
 * storage.session (for the popup) and the badge, pushes them to the banner content script on the
 * matching platform tabs, and applies the PAC routing switch. Talks to nothing but the API on
 * 127.0.0.1/localhost. Listeners are registered at the top level, as MV3 requires. */
'use strict';

if (typeof globalThis.CW === 'undefined' && typeof importScripts === 'function') {
  importScripts('lib/common.js');
}

const ext = globalThis.browser ?? globalThis.chrome;
const IS_FIREFOX = typeof globalThis.browser !== 'undefined' && typeof ext.runtime.getBrowserInfo === 'function';

const STATE_KEY = 'cwState';
const TABS_KEY = 'cwTabs';
const POLL_ALARM = 'consentwatch-poll';
const POLL_MINUTES = 1;
const HEARTBEAT_MS = 20_000; // we ping this often; the server pings every ~20 s too
const STALE_MS = 50_000; // nothing heard for this long: the socket is dead, reconnect
const FETCH_TIMEOUT_MS = 4_000;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

const FROM_PAGE = new Set(CW.FROM_PAGE);
const FROM_UI = new Set(CW.FROM_UI);
const EXTENSION_ORIGIN = ext.runtime.getURL('');

// Hosts our content script may run on, read from the manifest (the single source of truth).
const CONTENT_PATTERNS = (ext.runtime.getManifest().content_scripts || [])
  .flatMap((cs) => cs.matches || [])
  .map((m) => (m.match(/^https:\/\/([^/]+)\//) || [])[1])
  .filter(Boolean);

const storageSession = ext.storage.session ?? null; // Chrome 102+, Firefox 115+
let memorySession = {};

/* ---------------------------------------------------------------- state ---------------------- */

const EMPTY_STATE = Object.freeze({
  conn: 'starting', // starting | unpaired | connecting | connected | down | unauthorized | error
  warnings: [],
  apiBase: CW.DEFAULT_API_BASE,
  version: null,
  rules: null,
  proxyPort: null,
  lastSync: null,
  lastError: null,
});

async function sessionGet(key) {
  if (!storageSession) return memorySession[key];
  return (await storageSession.get(key))[key];
}

async function sessionSet(obj) {
  if (!storageSession) {
    memorySession = { ...memorySession, ...obj };
    return;
  }
  await storageSession.set(obj);
}

async function loadState() {
  return { ...EMPTY_STATE, ...((await sessionGet(STATE_KEY)) || {}) };
}

let updateChain = Promise.resolve();

/** Serialised read-modify-write of the state; updates badge and tabs when warnings change. */
function updateState(patch) {
  const run = async () => {
    const cur = await loadState();
    const delta = typeof patch === 'function' ? patch(cur) : patch;
    const next = { ...cur, ...delta };
    await sessionSet({ [STATE_KEY]: next });
    await renderBadge(next);
    if (delta.warnings && JSON.stringify(delta.warnings) !== JSON.stringify(cur.warnings)) {
      notifyTabs(next.warnings).catch(() => {});
    }
    return next;
  };
  updateChain = updateChain.then(run, run);
  return updateChain;
}

async function getSettings() {
  const got = await ext.storage.local.get(['apiBase', 'token']);
  const base = CW.normalizeApiBase(got.apiBase);
  const token = CW.normalizeToken(got.token);
  return {
    apiBase: base.ok ? base.value : CW.DEFAULT_API_BASE,
    apiBaseError: base.ok ? null : base.error,
    token: token.ok ? token.value : '',
  };
}

function cleanWarnings(list) {
  const out = [];
  const seen = new Set();
  for (const raw of Array.isArray(list) ? list : []) {
    const w = CW.sanitizeWarning(raw);
    if (w && w.status === 'active' && !seen.has(w.id)) {
      seen.add(w.id);
      out.push(w);
    }
  }
  return out;
}

/* ---------------------------------------------------------------- badge ---------------------- */

async function renderBadge(state) {
  const n = state.warnings.length;
  const showCount = n > 0 && state.conn !== 'unpaired';
  try {
    await ext.action.setBadgeText({ text: showCount ? String(n) : '' });
    await ext.action.setBadgeBackgroundColor({ color: '#B45309' });
    if (ext.action.setBadgeTextColor) await ext.action.setBadgeTextColor({ color: '#FFFFFF' });
    let title = 'consentwatch';
    if (state.conn === 'unpaired') title += ': not paired yet';
    else if (state.conn === 'down') title += ': not running';
    else if (n === 1) title += ': 1 AI-training warning';
    else if (n > 1) title += `: ${n} AI-training warnings`;
    else if (state.conn === 'connected') title += ': all clear';
    await ext.action.setTitle({ title });
  } catch (e) {
    console.warn('consentwatch: badge', e);
  }
}

/* ---------------------------------------------------------------- API ------------------------ */

class ApiError extends Error {
  constructor(kind, message, status = 0) {
    super(message);
    this.kind = kind; // 'down' | 'unauthorized' | 'http'
    this.status = status;
  }
}

async function apiFetch(apiBase, path, { token = null, method = 'GET', as = 'json' } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  let res;
  try {
    res = await fetch(apiBase + path, {
      method,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      signal: ctl.signal,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError('down', `No answer from consentwatch at ${apiBase}`);
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 401) throw new ApiError('unauthorized', 'consentwatch refused the token', 401);
  if (!res.ok) throw new ApiError('http', `consentwatch answered ${res.status} for ${path}`, res.status);
  return as === 'text' ? res.text() : res.json();
}

/* ---------------------------------------------------------------- WebSocket ------------------ */

let ws = null;
let wsKey = null; // apiBase + token the socket was opened with
let wsGen = 0;
let lastHeard = 0;
let heartbeatTimer = null;
let reconnectTimer = null;
let attempts = 0;

function closeSocket() {
  wsGen += 1;
  if (heartbeatTimer) clearInterval(heartbeatTimer);
  heartbeatTimer = null;
  if (ws) {
    try {
      ws.close(1000, 'settings changed');
    } catch {
      /* already closed */
    }
  }
  ws = null;
  wsKey = null;
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempts) * (0.75 + Math.random() * 0.5);
  attempts = Math.min(attempts + 1, 10);
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    refresh('backoff');
  }, delay);
}

function openSocket(apiBase, token) {
  const key = `${apiBase} ${token}`;
  if (ws && wsKey === key && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
  closeSocket();
  const gen = wsGen;
  const url = `${apiBase.replace(/^http/, 'ws')}/v1/ws?token=${encodeURIComponent(token)}`;
  let sock;
  try {
    sock = new WebSocket(url);
  } catch (e) {
    scheduleReconnect();
    return;
  }
  ws = sock;
  wsKey = key;
  lastHeard = Date.now();

  sock.onopen = () => {
    if (gen !== wsGen) return;
    attempts = 0;
    lastHeard = Date.now();
    heartbeatTimer = setInterval(() => {
      if (gen !== wsGen) return;
      if (Date.now() - lastHeard > STALE_MS) {
        try {
          sock.close(4000, 'heartbeat timeout');
        } catch {
          /* ignore */
        }
        return;
      }
      try {
        sock.send(JSON.stringify({ type: 'ping' }));
      } catch {
        /* onclose will follow */
      }
    }, HEARTBEAT_MS);
    updateState({ conn: 'connected', lastError: null });
  };

  sock.onmessage = (ev) => {
    if (gen !== wsGen) return;
    lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'hello':
        updateState({ conn: 'connected', warnings: cleanWarnings(msg.warnings), lastSync: new Date().toISOString() });
        break;
      case 'warning': {
        const w = CW.sanitizeWarning(msg.warning);
        if (!w) return;
        updateState((cur) => {
          const others = cur.warnings.filter((x) => x.id !== w.id);
          return { warnings: w.status === 'active' ? [...others, w] : others, lastSync: new Date().toISOString() };
        });
        break;
      }
      case 'resolved': {
        const id = msg.warning && typeof msg.warning.id === 'string' ? msg.warning.id : null;
        if (!id) return;
        updateState((cur) => ({ warnings: cur.warnings.filter((x) => x.id !== id), lastSync: new Date().toISOString() }));
        break;
      }
      default: // ping, pong and anything newer: hearing it is enough
        break;
    }
  };

  sock.onclose = () => {
    if (gen !== wsGen) return;
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    ws = null;
    wsKey = null;
    updateState((cur) => (cur.conn === 'connected' ? { conn: 'connecting' } : {}));
    scheduleReconnect();
  };
  sock.onerror = () => {
    /* onclose follows */
  };
}

/* ---------------------------------------------------------------- refresh -------------------- */

let refreshing = null;
let refreshAgain = false;

/** Checks the API, pulls active warnings over REST, (re)opens the socket. Never throws. */
function refresh(reason = '') {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await refreshOnce(reason);
    } while (refreshAgain);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshOnce() {
  const { apiBase, apiBaseError, token } = await getSettings();
  if (!token) {
    closeSocket();
    return updateState({ conn: 'unpaired', warnings: [], apiBase, lastError: apiBaseError });
  }
  let health;
  try {
    health = await apiFetch(apiBase, '/v1/health');
  } catch (e) {
    closeSocket();
    scheduleReconnect();
    return updateState({ conn: 'down', apiBase, lastError: e.message });
  }
  try {
    const body = await apiFetch(apiBase, '/v1/warnings?status=active', { token });
    const socketUp = ws && ws.readyState === WebSocket.OPEN && wsKey === `${apiBase} ${token}`;
    await updateState({
      conn: socketUp ? 'connected' : 'connecting',
      warnings: cleanWarnings(body.warnings),
      apiBase,
      version: typeof health.version === 'string' ? health.version : null,
      rules: Number.isInteger(health.rules) ? health.rules : null,
      proxyPort: Number.isInteger(health.proxy_port) ? health.proxy_port : null,
      lastSync: new Date().toISOString(),
      lastError: null,
    });
  } catch (e) {
    if (e.kind === 'unauthorized') {
      closeSocket();
      return updateState({ conn: 'unauthorized', warnings: [], apiBase, lastError: e.message });
    }
    closeSocket();
    scheduleReconnect();
    return updateState({ conn: e.kind === 'down' ? 'down' : 'error', apiBase, lastError: e.message });
  }
  openSocket(apiBase, token);
  syncRouting(apiBase, token).catch((e) => console.warn('consentwatch: routing', e));
  return loadState();
}

/* ---------------------------------------------------------------- routing (PAC) -------------- */

async function proxyLevel() {
  if (IS_FIREFOX) {
    try {
      const got = await ext.proxy.settings.get({});
      return { level: got.levelOfControl, value: got.value };
    } catch (e) {
      return { level: 'not_controllable', value: null, error: e.message };
    }
  }
  const got = await ext.proxy.settings.get({ incognito: false });
  return { level: got.levelOfControl, value: got.value };
}

async function setPac(pac) {
  if (IS_FIREFOX) {
    // Firefox has no inline PAC data; a data: URL carries the same script.
    const bytes = new TextEncoder().encode(pac);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    const b64 = btoa(bin);
    await ext.proxy.settings.set({
      value: { proxyType: 'autoConfig', autoConfigUrl: `data:application/x-ns-proxy-autoconfig;base64,${b64}` },
    });
  } else {
    await ext.proxy.settings.set({ value: { mode: 'pac_script', pacScript: { data: pac, mandatory: false } }, scope: 'regular' });
  }
}

async function clearPac() {
  if (IS_FIREFOX) await ext.proxy.settings.clear({});
  else await ext.proxy.settings.clear({ scope: 'regular' });
}

async function routingStatus() {
  const { routing = {} } = await ext.storage.local.get('routing');
  const { level, value } = await proxyLevel();
  const ours = level === 'controlled_by_this_extension';
  let blockedBy = null;
  if (level === 'controlled_by_other_extensions') blockedBy = 'Another extension controls your proxy settings.';
  if (level === 'not_controllable') blockedBy = 'Your browser’s proxy is set by a policy or a command-line flag.';
  return {
    enabled: Boolean(routing.enabled) && ours,
    wanted: Boolean(routing.enabled),
    appliedAt: routing.appliedAt || null,
    error: routing.error || (routing.enabled && !ours ? blockedBy : null),
    blockedBy,
    mode: value ? value.mode || value.proxyType || null : null,
  };
}

async function enableRouting(apiBase, token) {
  const pac = await apiFetch(apiBase, '/v1/proxy.pac', { token, as: 'text' });
  if (!/FindProxyForURL/.test(pac) || pac.length > 200_000) throw new Error('consentwatch sent an unusable PAC script');
  await setPac(pac);
  const { level } = await proxyLevel();
  if (level !== 'controlled_by_this_extension') {
    const status = await routingStatus();
    throw new Error(status.blockedBy || 'The browser did not accept the proxy setting.');
  }
  await ext.storage.local.set({ routing: { enabled: true, pac, appliedAt: new Date().toISOString(), error: null } });
}

async function setRouting(enabled) {
  if (!enabled) {
    try {
      await clearPac();
    } finally {
      await ext.storage.local.set({ routing: { enabled: false, pac: null, appliedAt: null, error: null } });
    }
    return routingStatus();
  }
  const { apiBase, token } = await getSettings();
  if (!token) throw new Error('Pair the extension with consentwatch first (Settings).');
  try {
    await enableRouting(apiBase, token);
  } catch (e) {
    const message = e instanceof ApiError && e.kind === 'down' ? 'consentwatch is not running, so there is nothing to route to.' : e.message;
    await ext.storage.local.set({ routing: { enabled: false, pac: null, appliedAt: null, error: message } });
    try {
      await clearPac();
    } catch {
      /* nothing was set */
    }
    throw new Error(message);
  }
  return routingStatus();
}

/** When routing is on, keep the browser's PAC equal to what the API serves (ports or rules may change). */
async function syncRouting(apiBase, token) {
  const { routing } = await ext.storage.local.get('routing');
  if (!routing || !routing.enabled) return;
  const pac = await apiFetch(apiBase, '/v1/proxy.pac', { token, as: 'text' });
  const { level } = await proxyLevel();
  if (pac !== routing.pac || level !== 'controlled_by_this_extension') {
    if (!/FindProxyForURL/.test(pac)) return;
    await setPac(pac);
    await ext.storage.local.set({ routing: { ...routing, pac, appliedAt: new Date().toISOString() } });
  }
}

/* ---------------------------------------------------------------- tabs (banner) -------------- */

function pageHostAllowed(hostname) {
  return CONTENT_PATTERNS.some((p) => CW.hostMatches(hostname, p));
}

function warningsForHost(warnings, hostname) {
  return warnings.filter((w) => w.hosts.some((h) => CW.hostMatches(hostname, h)));
}

async function trackTab(tabId, hostname) {
  const tabs = (await sessionGet(TABS_KEY)) || {};
  if (tabs[tabId] !== hostname) {
    tabs[tabId] = hostname;
    await sessionSet({ [TABS_KEY]: tabs });
  }
}

async function untrackTab(tabId) {
  const tabs = (await sessionGet(TABS_KEY)) || {};
  if (tabId in tabs) {
    delete tabs[tabId];
    await sessionSet({ [TABS_KEY]: tabs });
  }
}

async function notifyTabs(warnings) {
  const tabs = (await sessionGet(TABS_KEY)) || {};
  await Promise.all(
    Object.entries(tabs).map(async ([tabId, hostname]) => {
      try {
        await ext.tabs.sendMessage(Number(tabId), { type: 'page:warnings', warnings: warningsForHost(warnings, hostname) });
      } catch {
        await untrackTab(tabId); // tab closed or navigated away from the platform
      }
    }),
  );
}

/* ---------------------------------------------------------------- actions -------------------- */

async function findWarning(id) {
  const state = await loadState();
  return state.warnings.find((w) => w.id === id) || null;
}

async function dismiss(id) {
  if (typeof id !== 'string') throw new Error('bad id');
  const { apiBase, token } = await getSettings();
  const body = await apiFetch(apiBase, `/v1/warnings/${encodeURIComponent(id)}/dismiss`, { token, method: 'POST' });
  await updateState((cur) => ({ warnings: cur.warnings.filter((w) => w.id !== id) }));
  return CW.sanitizeWarning(body && body.warning);
}

async function openSettings(id, openerTabId) {
  const w = await findWarning(id);
  const url = w && (w.remedy.settings_url || w.url);
  if (!url) throw new Error('No settings page is known for this warning.');
  const props = { url, active: true };
  if (Number.isInteger(openerTabId)) props.openerTabId = openerTabId;
  await ext.tabs.create(props);
}

async function testConnection(apiBaseInput, tokenInput) {
  const base = CW.normalizeApiBase(apiBaseInput);
  if (!base.ok) return { ok: false, stage: 'address', message: base.error };
  const tok = CW.normalizeToken(tokenInput);
  if (!tok.ok) return { ok: false, stage: 'token', message: tok.error };
  let health;
  try {
    health = await apiFetch(base.value, '/v1/health');
  } catch (e) {
    return { ok: false, stage: 'down', message: `consentwatch is not running at ${base.value}. Start it with “consentwatch run”.` };
  }
  if (!tok.value) {
    return { ok: false, stage: 'token', message: `consentwatch ${health.version || ''} is running, but there is no token yet. Run “consentwatch token” and paste what it prints.` };
  }
  try {
    const body = await apiFetch(base.value, '/v1/warnings?status=active', { token: tok.value });
    const n = Array.isArray(body.warnings) ? body.warnings.length : 0;
    return {
      ok: true,
      stage: 'ok',
      version: health.version || null,
      rules: health.rules ?? null,
      warnings: n,
      message: `Connected to consentwatch ${health.version || ''}: watching ${health.rules ?? 'its'} rules, ${n} active warning${n === 1 ? '' : 's'}.`,
    };
  } catch (e) {
    if (e.kind === 'unauthorized') return { ok: false, stage: 'token', message: 'consentwatch is running but refused this token. Run “consentwatch token” and paste it again.' };
    return { ok: false, stage: 'error', message: e.message };
  }
}

async function uiState() {
  const [state, routing, settings] = await Promise.all([loadState(), routingStatus().catch(() => null), getSettings()]);
  return { ...state, routing, paired: Boolean(settings.token), apiBase: settings.apiBase };
}

/* ---------------------------------------------------------------- messages ------------------- */

function isFromExtensionPage(sender) {
  return sender.id === ext.runtime.id && typeof sender.url === 'string' && sender.url.startsWith(EXTENSION_ORIGIN);
}

function pageHostname(sender) {
  if (sender.id !== ext.runtime.id || !sender.tab || !Number.isInteger(sender.tab.id)) return null;
  if (sender.frameId !== undefined && sender.frameId !== 0) return null;
  try {
    const u = new URL(sender.url);
    return u.protocol === 'https:' && pageHostAllowed(u.hostname) ? u.hostname : null;
  } catch {
    return null;
  }
}

async function handlePage(msg, sender, hostname) {
  const state = await loadState();
  const mine = warningsForHost(state.warnings, hostname);
  switch (msg.type) {
    case 'page:get':
      await trackTab(sender.tab.id, hostname);
      return { warnings: mine };
    case 'page:dismiss':
      if (!mine.some((w) => w.id === msg.id)) throw new Error('unknown warning');
      await dismiss(msg.id);
      return { ok: true };
    case 'page:open-settings':
      if (!mine.some((w) => w.id === msg.id)) throw new Error('unknown warning');
      await openSettings(msg.id, sender.tab.id);
      return { ok: true };
    default:
      throw new Error('not allowed');
  }
}

async function handleUi(msg) {
  switch (msg.type) {
    case 'ui:get-state':
      return uiState();
    case 'ui:refresh':
      await refresh('ui');
      return uiState();
    case 'ui:dismiss':
      await dismiss(msg.id);
      return uiState();
    case 'ui:open-settings':
      await openSettings(msg.id);
      return { ok: true };
    case 'ui:open-report': {
      const { apiBase, token } = await getSettings();
      if (!token) throw new Error('Not paired yet');
      await ext.tabs.create({ url: `${apiBase}/report?token=${encodeURIComponent(token)}` });
      return { ok: true };
    }
    case 'ui:open-options':
      await ext.runtime.openOptionsPage();
      return { ok: true };
    case 'ui:set-routing':
      return { routing: await setRouting(Boolean(msg.enabled)) };
    case 'ui:test-connection':
      return testConnection(msg.apiBase, msg.token);
    default:
      throw new Error('not allowed');
  }
}

ext.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return false;
  let work;
  if (FROM_PAGE.has(msg.type)) {
    const hostname = pageHostname(sender);
    if (!hostname) return false;
    work = handlePage(msg, sender, hostname);
  } else if (FROM_UI.has(msg.type)) {
    if (!isFromExtensionPage(sender)) return false;
    work = handleUi(msg);
  } else {
    return false; // not on the allow-list: ignored, no answer
  }
  work.then(
    (result) => sendResponse({ ok: true, result }),
    (e) => sendResponse({ ok: false, error: String((e && e.message) || e) }),
  );
  return true;
});

// Nothing outside the extension may talk to it.
if (ext.runtime.onMessageExternal) ext.runtime.onMessageExternal.addListener(() => false);
if (ext.runtime.onConnectExternal) ext.runtime.onConnectExternal.addListener((port) => port.disconnect());

/* ---------------------------------------------------------------- lifecycle ------------------ */

ext.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && ('apiBase' in changes || 'token' in changes)) {
    attempts = 0;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    closeSocket();
    refresh('settings');
  }
});

ext.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name !== POLL_ALARM) return;
  // The worker may have slept and lost its socket: poll over REST and reconnect.
  refresh('alarm');
});

ext.tabs.onRemoved.addListener((tabId) => {
  untrackTab(String(tabId)).catch(() => {});
});

ext.runtime.onInstalled.addListener(() => refresh('installed'));
ext.runtime.onStartup.addListener(() => refresh('startup'));

(async () => {
  const existing = await ext.alarms.get(POLL_ALARM);
  if (!existing) ext.alarms.create(POLL_ALARM, { periodInMinutes: POLL_MINUTES, delayInMinutes: POLL_MINUTES });
  await renderBadge(await loadState());
  refresh('wake');
})();
