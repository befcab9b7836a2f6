/* consentwatch first-run page: the set-up checklist (status.js's checklist(), computed in the worker), asked for
 * again every 1.5 s, each unchecked item with its next action. */
'use strict';

const { el, send, actionNodes } = CWStatusUI;
const $ = (id) => document.getElementById(id);
const POLL_MS = 1500;

let lastKey = '';

// The pairing control itself, here on the page (not a button to another page): made once and moved back in on each
// render, so a confirmation in progress survives the checklist's looks every 1.5 s.
let pairBox = null;
let pairFor = null;
function pairNodes(reason) {
  if (!pairBox) pairBox = CWPair.create({ onPaired: () => { lastKey = ''; poll(); } });
  if (pairFor !== reason) pairBox.reset();
  pairFor = reason;
  return [pairBox, el('button', { type: 'button', class: 'btn secondary', dataset: { action: 'paste-token' },
    onclick: () => send('ui:open-options').catch(() => {}) }, 'Paste a token instead')];
}
let failure = null; // the last action's error, shown under its item until the next action

function render(state) {
  if (!state || !state.checklist) return;
  const key = JSON.stringify([state.checklist, failure]);
  if (key === lastKey) return; // unchanged: keep the buttons (and any focus) as they are
  lastKey = key;
  const { items, status } = state.checklist;
  const verdict = $('verdict');
  verdict.dataset.verdict = status.verdict;
  $('verdict-title').textContent = status.verdict === 'watching' ? 'Watching'
    : status.verdict === 'not-watching' ? `Not watching — ${status.title}` : status.title;
  $('verdict-detail').textContent = status.detail || '';
  document.body.dataset.done = String(state.checklist.done);

  $('checklist').replaceChildren(...items.map((item) => {
    const next = item.done ? [] : item.action && item.action.id === 'pair' ? pairNodes(state.checklist.status.reason)
      : actionNodes(item.action, {
        onDone: (s) => { failure = null; render(s); },
        onError: (e) => { failure = { id: item.id, message: e.message }; lastKey = ''; poll(); },
      });
    return el('li', { dataset: { item: item.id, done: String(item.done) } },
      el('span', { class: 'mark', 'aria-hidden': 'true' }, '✓'),
      el('span', { class: 'label' }, item.label, el('span', { class: 'sr' }, item.done ? ' (done)' : ' (to do)')),
      el('span', { class: 'detail' }, item.detail),
      next.length ? el('div', { class: 'next' }, next) : null,
      failure && failure.id === item.id ? el('p', { class: 'error' }, failure.message) : null);
  }));
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    render(await send('ui:check'));
  } catch (e) {
    console.warn(e);
  } finally {
    polling = false;
  }
}

setInterval(poll, POLL_MS);
send('ui:get-state').then(render, () => {}).finally(poll);
