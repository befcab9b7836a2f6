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

const { el, send, actionNodes } = CWStatusUI;

// The tab this popup is about: the active tab of its window (popup.html?tab=ID when opened as a page).
const tabParam = Number.parseInt(new URLSearchParams(location.search).get('tab') || '', 10);
const tabIdReady = Number.isInteger(tabParam) ? Promise.resolve(tabParam)
  : Promise.resolve(ext.tabs.query({ active: true, currentWindow: true })).then((t) => (t && t[0] ? t[0].id : null), () => null);
const withTab = async (extra = {}) => ({ ...extra, tabId: await tabIdReady });

/* ------------------------------------------------------------------ rendering --------------- */

/** The header chip: never "Watching" unless the worker's status says so (a fresh, passed self-test). */
function statusText(state) {
  const st = state.status || { verdict: 'checking' };
  const n = state.warnings.length;
  const count = n ? ` · ${n} warning${n === 1 ? '' : 's'}` : '';
  if (st.verdict === 'watching') return `Watching${count}`;
  // warnings already known stay true while nothing is watched (a pairing that is gone shows none)
  if (st.verdict === 'not-watching') return `Not watching${state.paired && state.conn !== 'unauthorized' ? count : ''}`;
  return `Checking…${count}`;
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
  const st = state.status;
  const onError = (e) => {
    body.append(el('p', { class: 'error' }, e.message));
  };
  const onDone = (next, id) => {
    if (id === 'pair') closePopup();
    else if (next) render(next);
  };
  let tone = null;
  notice.dataset.reason = st ? st.reason : '';
  if (st && st.verdict === 'not-watching') {
    tone = st.reason === 'unpaired' ? 'warn' : 'bad';
    title.textContent = `Not watching — ${st.title}`;
    // Not paired, or the token refused: the one-click pairing control itself, the paste route beside it. Not
    // paired and nothing at the default address: consentwatch may run on other ports, which pairing finds out.
    const pairing = ['unpaired', 'unauthorized'].includes(st.reason);
    const nodes = pairing
      ? [pairControl(state.conn), el('button', {
        type: 'button', class: 'btn secondary', onclick: () => send('ui:open-options').then(() => closePopup()),
      }, 'Paste a token instead')]
      : actionNodes(st.action, { onDone, onError });
    if (st.reason === 'backend-down' && !state.paired) nodes.push(pairControl(state.conn));
    const r = state.routing || {};
    // the switch below shows the same words as its error: said once, there
    const underSwitch = ['routing-blocked', 'routing-failed'].includes(st.reason) && [r.error, r.blockedBy].includes(st.detail);
    const detail = underSwitch ? 'Why, and where to change it, is under the switch below.' : st.detail;
    body.append(el('p', {}, detail), ...nodes.filter((n) => n.tagName === 'P'));
    actions.append(...nodes.filter((n) => n.tagName !== 'P'));
  } else if (st && st.verdict === 'checking') {
    tone = 'idle';
    title.textContent = st.title;
    body.append(el('p', {}, st.detail));
  } else if (st && st.verdict === 'watching') {
    for (const c of st.cautions) {
      tone = 'warn';
      title.textContent = 'Watching, with a gap';
      body.append(el('p', { dataset: { caution: c.id } }, c.text), ...actionNodes(c.action, { onDone, onError, primary: false }));
    }
    if (!tone && !state.warnings.length) {
      tone = 'ok';
      title.textContent = 'Nothing to act on';
      body.append(el('p', {}, `${state.rules ? `consentwatch knows ${state.rules} AI-training settings. ` : ''}`
        + 'None of the platform pages you visited showed one switched on. A warning appears here the moment consentwatch sees one.'));
    }
  }
  notice.hidden = !tone;
  if (tone) notice.dataset.tone = tone;
}

/** This tab's page of a watched platform loaded while consentwatch was not watching (as uBlock marks a tab). */
function renderTab(state) {
  const box = $('tab-mark');
  const mark = state.tab;
  box.hidden = !mark;
  if (!mark) return;
  $('tab-mark-text').textContent = `This ${mark.host} page was not watched: it loaded while consentwatch was not watching. `
    + 'Reload it once the status above says “Watching”.';
}

/** Per platform, which eyes can see it (the rules' seen_via) and whether each eye works right now. */
function renderPlatforms(state) {
  const list = state.platforms || [];
  const box = $('platforms');
  box.hidden = !list.length;
  $('platforms-count').textContent = String(list.length);
  const words = { network: 'proxy', page: 'page' };
  $('platforms-list').replaceChildren(...list.map((p) => el('li', { dataset: { platform: p.platform } },
    el('span', { class: 'name' }, p.name),
    el('span', { class: 'eyes' }, p.eyes.map((e) => el('span', {
      class: `eye${e.working ? ' on' : ' off'}`,
      dataset: { eye: e.eye, working: String(e.working) },
      title: e.eye === 'network'
        ? (e.working ? 'consentwatch’s proxy reads its traffic' : 'consentwatch’s proxy would read its traffic, but it is not watching now')
        : (e.working ? 'this extension reads its settings page' : 'this extension may not read its pages'),
    }, words[e.eye]))))));
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
  // ... and while the route is being proven, so "Checking…" turns into an answer without reopening
  const away = state.conn === 'down' || state.conn === 'connecting' || state.conn === 'error'
    || (state.status && state.status.verdict === 'checking');
  if (away && !retryTimer) retryTimer = setInterval(() => refresh(), 3000);
  if (!away && retryTimer) {
    clearInterval(retryTimer);
    retryTimer = null;
  }
  const status = $('status');
  status.dataset.conn = state.conn;
  status.dataset.verdict = state.status ? state.status.verdict : 'checking';
  $('status-text').textContent = statusText(state);
  document.body.dataset.conn = state.conn;
  document.body.dataset.reason = state.status ? state.status.reason : '';
  renderNotice(state);
  renderTab(state);
  renderPlatforms(state);
  renderWarnings(state);
  renderRouting(state);
  renderPages(state);
  $('open-report').hidden = !state.paired || state.conn === 'down';
}

async function refresh(button) {
  if (button) button.disabled = true;
  try {
    render(await send('ui:refresh', await withTab()));
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
    state = await send('ui:get-state', await withTab());
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
  withTab().then((m) => send('ui:get-state', m)).then(render, () => {});
});

$('open-report').addEventListener('click', () => send('ui:open-report').then(() => closePopup(), (e) => console.warn(e)));
$('open-options').addEventListener('click', () => send('ui:open-options').then(() => closePopup()));

// Live updates: the worker writes its state to storage.session whenever something changes.
ext.storage.onChanged.addListener((changes, area) => {
  if (area === 'session' && changes.cwState) withTab().then((m) => send('ui:get-state', m)).then(render, () => {});
});

withTab().then((m) => send('ui:get-state', m))
  .then(render)
  .catch(() => {})
  .finally(() => refresh());
