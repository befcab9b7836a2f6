/* consentwatch popup: shows what the service worker knows; every action goes through the worker. */
'use strict';

const ext = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);

// Opened as the toolbar popup (close it after opening a tab) or as a page in a tab (stay open).
let inTab = false;
Promise.resolve(ext.tabs.getCurrent()).then((tab) => { inTab = Boolean(tab); }, () => {});
function closePopup() {
  if (!inTab) window.close();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function send(type, extra = {}) {
  const reply = await ext.runtime.sendMessage({ type, ...extra });
  if (!reply) throw new Error('The extension did not answer. Try reopening this window.');
  if (!reply.ok) throw new Error(reply.error || 'Something went wrong');
  return reply.result;
}

/* ------------------------------------------------------------------ rendering --------------- */

const STATUS_TEXT = {
  starting: 'Checking…',
  connecting: 'Connecting…',
  connected: 'Watching',
  down: 'Not running',
  unpaired: 'Not paired',
  unauthorized: 'Token refused',
  error: 'Problem',
};

/** Command text inside a sentence: "Run <code>consentwatch token</code> …". */
function withCode(parts) {
  return parts.map((p) => (typeof p === 'string' ? p : el('code', {}, p.code)));
}

// Made once and moved back in on each render: a confirmation in progress survives the popup's re-renders.
let pairBox = null;
let pairFor = null;
function pairControl(conn) {
  if (!pairBox) pairBox = CWPair.create({ onPaired: () => refresh() });
  if (pairFor !== conn) pairBox.reset();
  pairFor = conn;
  return pairBox;
}

function renderNotice(state) {
  const notice = $('notice');
  const title = $('notice-title');
  const body = $('notice-body');
  const actions = $('notice-actions');
  actions.replaceChildren();
  body.replaceChildren();
  const optionsBtn = (label = 'Open settings', primary = false) =>
    el('button', { type: 'button', class: `btn ${primary ? 'primary' : 'secondary'}`, onclick: () => send('ui:open-options').then(() => closePopup()) }, label);
  const retryBtn = () =>
    el('button', { type: 'button', class: 'btn primary', id: 'retry', onclick: (ev) => refresh(ev.currentTarget) }, 'Try again');

  let tone = null;
  switch (state.conn) {
    case 'unpaired':
      tone = 'warn';
      title.textContent = 'Not paired yet';
      body.append('This extension needs to pair with consentwatch on this computer to read its warnings.');
      actions.append(pairControl(state.conn), optionsBtn('Paste a token instead'));
      break;
    case 'down':
      tone = 'bad';
      title.textContent = 'consentwatch is not running';
      body.append(...withCode([
        `Nothing answers at ${state.apiBase}. Start it with `,
        { code: 'consentwatch run' },
        ', and warnings will show up here as soon as it is up.',
      ]));
      actions.append(retryBtn(), optionsBtn('Check address'));
      break;
    case 'unauthorized':
      tone = 'bad';
      title.textContent = 'The token was not accepted';
      body.append(...withCode([
        'consentwatch is running but refused the saved token. Run ',
        { code: 'consentwatch token' },
        ' and paste the new one into Settings, or pair again.',
      ]));
      actions.append(pairControl(state.conn), optionsBtn('Update token'));
      break;
    case 'error':
      tone = 'bad';
      title.textContent = 'consentwatch had a problem';
      body.textContent = state.lastError || 'The local API gave an unexpected answer.';
      actions.append(retryBtn());
      break;
    case 'connected':
    case 'connecting':
      if (!state.warnings.length) {
        tone = 'ok';
        title.textContent = 'Nothing to act on';
        body.textContent = `${state.rules ? `consentwatch knows ${state.rules} AI-training settings. ` : ''}`
          + 'None of the platform pages you visited showed one switched on. A warning appears here the moment consentwatch sees one.';
      }
      break;
    default:
      break;
  }
  notice.hidden = !tone;
  if (tone) notice.dataset.tone = tone;
}

function kindChip(w) {
  const label = CW.KINDS[w.kind] || 'On by default';
  return el('span', { class: `chip${w.kind.startsWith('policy_') ? ' info' : ''}` }, label);
}

function warningCard(w, live) {
  const facts = el('dl', { class: 'facts' });
  const fact = (k, v, cls) => v && facts.append(el('dt', {}, k), el('dd', { class: cls }, v));
  fact('First seen', CW.formatSince(w.first_seen));
  fact('Your region', CW.regionText(w.region_affected), w.region_affected ? 'yes' : null);
  fact('Setting', w.setting);
  fact('Date', CW.effectiveText(w));

  const steps = w.remedy.steps.length
    ? [
      el('p', { class: 'label' }, w.kind.startsWith('policy_') ? 'Where to opt out' : 'How to switch it off'),
      el('ol', { class: 'steps', 'aria-label': 'Steps' }, w.remedy.steps.map((s) => el('li', {}, CW.stepLabel(s)))),
    ]
    : [];

  const err = el('p', { class: 'error', hidden: true });
  const fail = (what) => (e) => {
    err.textContent = `${what}: ${e.message}`;
    err.hidden = false;
  };
  const settingsUrl = w.remedy.settings_url || w.url;
  return el(
    'article',
    { class: 'warning', dataset: { warningId: w.id, platform: w.platform } },
    kindChip(w),
    el('h3', {}, w.title),
    w.summary && el('p', { class: 'text' }, w.summary),
    facts,
    steps,
    w.remedy.note && el('p', { class: 'note' }, w.remedy.note),
    el(
      'div',
      { class: 'actions' },
      settingsUrl &&
        el('button', {
          type: 'button',
          class: 'btn primary',
          dataset: { action: 'open-settings' },
          onclick: () => send('ui:open-settings', { id: w.id }).then(() => closePopup(), fail('Could not open it')),
        }, `Open ${w.platform_name} setting`),
      live && el('button', {
        type: 'button',
        class: 'btn secondary',
        title: 'Stop warning me about this (it stays in the report)',
        dataset: { action: 'dismiss' },
        onclick: (ev) => {
          ev.currentTarget.disabled = true;
          send('ui:dismiss', { id: w.id }).then(render, (e) => {
            ev.currentTarget.disabled = false;
            fail('Could not dismiss')(e);
          });
        },
      }, 'Dismiss'),
    ),
    err,
  );
}

/** Which eyes saw this platform's warnings: the page (the extension read the rendered page), the proxy. */
function eyesLine(warnings) {
  const text = CW.eyesText(warnings);
  if (!text) return null;
  const eyes = [...new Set(warnings.flatMap((w) => w.seen_by))].sort().join(' ');
  return el('p', { class: 'eyes', dataset: { seenBy: eyes }, title: 'the page: this extension read the setting in the page; the proxy: consentwatch read the platform’s traffic' }, text);
}

function renderWarnings(state) {
  const groupsBox = $('groups');
  const summary = $('summary');
  const list = state.conn === 'unpaired' || state.conn === 'unauthorized' ? [] : state.warnings;
  const groups = CW.groupByPlatform(list);
  groupsBox.replaceChildren(
    ...groups.map((g) =>
      el(
        'section',
        { class: 'group', dataset: { platform: g.platform } },
        el('h2', {}, g.name, g.warnings.length > 1 ? el('span', { class: 'count' }, `· ${g.warnings.length}`) : null),
        eyesLine(g.warnings),
        g.warnings.map((w) => warningCard(w, state.conn === 'connected' || state.conn === 'connecting')),
      ),
    ),
  );
  summary.replaceChildren();
  if (state.conn === 'down' && groups.length) {
    summary.append('Last known warnings, from before consentwatch stopped:');
  } else if (groups.length > 1) {
    summary.append(el('strong', {}, `${groups.length} platforms need your attention.`), ' Here is what each one does, and how to stop it.');
  }
  summary.hidden = !summary.childNodes.length;
}

function renderRouting(state) {
  const toggle = $('routing-toggle');
  const help = $('routing-help');
  const error = $('routing-error');
  const r = state.routing || {};
  const paired = state.paired && state.conn !== 'unauthorized';
  // Nothing to switch before pairing; while consentwatch is down it can only be switched off.
  $('routing').hidden = (!paired || state.conn === 'down') && !r.enabled;
  toggle.checked = Boolean(r.enabled);
  toggle.disabled = !r.enabled && (!paired || state.conn === 'down' || Boolean(r.blockedBy));
  const port = state.proxyPort ? ` on port ${state.proxyPort}` : '';
  if (r.enabled) {
    help.textContent = `On. Only the watched platforms go through consentwatch${port}; every other site goes direct, untouched.`;
  } else {
    help.textContent = 'Sends only the watched platforms’ traffic to consentwatch. Every other site goes direct, and no system setting changes. '
      + 'Without it, the settings pages you open are still read in the page.';
  }
  const problem = r.error || (r.blockedBy && !r.enabled ? r.blockedBy : null);
  error.textContent = problem || '';
  error.hidden = !problem;
}

function renderPages(state) {
  const missing = (state.pages && state.pages.missing) || [];
  const box = $('pages');
  box.hidden = !missing.length || state.conn === 'unpaired';
  box.dataset.hosts = missing.join(' ');
  $('pages-hosts').textContent = missing.map((h) => h.replace(/^\*\./, '')).join(', ');
}

// While the popup is open and consentwatch is away, look for it every few seconds (the worker's own
// backoff stretches to a minute, which is long for someone watching this window).
let retryTimer = null;

function render(state) {
  if (!state) return;
  const away = state.conn === 'down' || state.conn === 'connecting' || state.conn === 'error';
  if (away && !retryTimer) retryTimer = setInterval(() => refresh(), 3000);
  if (!away && retryTimer) {
    clearInterval(retryTimer);
    retryTimer = null;
  }
  const status = $('status');
  status.dataset.conn = state.conn;
  const n = state.warnings.length;
  $('status-text').textContent = state.conn === 'connected' && n ? `Watching · ${n} warning${n === 1 ? '' : 's'}` : STATUS_TEXT[state.conn] || state.conn;
  document.body.dataset.conn = state.conn;
  renderNotice(state);
  renderWarnings(state);
  renderRouting(state);
  renderPages(state);
  $('open-report').hidden = !state.paired || state.conn === 'down';
}

async function refresh(button) {
  if (button) button.disabled = true;
  try {
    render(await send('ui:refresh'));
  } catch (e) {
    console.warn(e);
  } finally {
    if (button) button.disabled = false;
  }
}

/* ------------------------------------------------------------------ wiring ------------------- */

$('routing-toggle').addEventListener('change', async (ev) => {
  const toggle = ev.currentTarget;
  const want = toggle.checked;
  toggle.disabled = true;
  $('routing-error').hidden = true;
  let failed = null;
  try {
    await send('ui:set-routing', { enabled: want });
  } catch (e) {
    failed = e.message;
  }
  let state = null;
  try {
    state = await send('ui:get-state');
  } catch (e) {
    failed = failed || e.message;
  }
  if (state) {
    render(state); // decides whether the switch may be used now (render may keep it disabled)
  } else {
    toggle.checked = !want;
    toggle.disabled = false;
  }
  const problem = failed || (state && state.routing && state.routing.error);
  if (problem) {
    $('routing-error').textContent = problem;
    $('routing-error').hidden = false;
  }
});

// Platforms added by a newer rule pack: the page eye may read their pages once the user allows it here.
$('pages-allow').addEventListener('click', async () => {
  const hosts = ($('pages').dataset.hosts || '').split(' ').filter(Boolean);
  if (!hosts.length) return;
  try {
    await ext.permissions.request({ origins: hosts.map((h) => `https://${h}/*`) });
  } catch (e) {
    console.warn(e);
  }
  send('ui:get-state').then(render, () => {});
});

$('open-report').addEventListener('click', () => send('ui:open-report').then(() => closePopup(), (e) => console.warn(e)));
$('open-options').addEventListener('click', () => send('ui:open-options').then(() => closePopup()));

// Live updates: the worker writes its state to storage.session whenever something changes.
ext.storage.onChanged.addListener((changes, area) => {
  if (area === 'session' && changes.cwState) send('ui:get-state').then(render, () => {});
});

send('ui:get-state')
  .then(render)
  .catch(() => {})
  .finally(() => refresh());
