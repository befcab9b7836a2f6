/* consentwatch: the "Pair with consentwatch" control, shared by the options page, the popup and the first-run page.
 * A plain script (loaded after lib/status-ui.js) exposing one frozen global, CWPair. Every step goes through the
 * worker (background/pairing.js): ask the pairing host, show the address it gave, save it once the user confirms. */
'use strict';

(function (root) {
  // The pages' shared helpers (lib/status-ui.js): a refused or unanswered message becomes an outcome to show.
  const { el: node } = root.CWStatusUI;
  const send = (type, extra = {}) => root.CWStatusUI.send(type, extra)
    .catch((e) => ({ ok: false, message: e.message }));

  /**
   * A pairing control: a button, then a confirmation that names the address (with a box, checked, that turns
   * routing on in the same click: the user sees what the click does and can uncheck it), then the outcome.
   * onPaired(result) runs after the settings are saved. Returns the element (create it once and keep it: the
   * popup re-renders often and must not lose a confirmation in progress).
   */
  function create({ onPaired = () => {}, label = 'Pair with consentwatch' } = {}) {
    const box = node('div', { class: 'pair', 'data-pair-state': 'idle' });
    const start = node('button', { type: 'button', class: 'btn primary', 'data-pair': 'start' }, label);
    const question = node('p', { class: 'pair-question' });
    const routing = node('input', { type: 'checkbox', 'data-pair': 'routing' });
    routing.checked = true;
    const routingLine = node('label', { class: 'pair-routing' }, routing,
      node('span', {}, 'Also turn routing on: the watched platforms’ traffic goes through consentwatch, so it can read it; '
        + 'every other site goes direct.'));
    const accept = node('button', { type: 'button', class: 'btn primary', 'data-pair': 'accept' }, 'Pair');
    const cancel = node('button', { type: 'button', class: 'btn secondary', 'data-pair': 'cancel' }, 'Cancel');
    const confirm = node('div', { class: 'pair-confirm', hidden: true }, question, routingLine,
      node('div', { class: 'actions' }, accept, cancel));
    const result = node('p', { class: 'pair-result', role: 'status', 'aria-live': 'polite', hidden: true });
    box.append(node('div', { class: 'actions pair-start' }, start), confirm, result);

    const show = (state, ok, text) => {
      box.dataset.pairState = state;
      start.disabled = state === 'asking' || state === 'confirm' || state === 'saving';
      confirm.hidden = state !== 'confirm';
      accept.disabled = cancel.disabled = routing.disabled = state === 'saving';
      result.hidden = !text;
      result.textContent = text || '';
      result.dataset.ok = String(ok);
      result.className = `pair-result${ok === false ? ' error' : ok === 'partly' ? ' partly' : ''}`;
    };

    start.addEventListener('click', async () => {
      show('asking', 'info', 'Asking consentwatch on this computer…');
      const r = await send('ui:pair-offer');
      if (!r.ok) return show('error', false, r.message);
      const version = r.version ? ` ${r.version}` : '';
      question.replaceChildren(`Pair with consentwatch${version} at `, node('code', {}, r.apiBase),
        '? This extension will read its warnings and nothing else.');
      routing.checked = true; // each offer asks afresh
      show('confirm', 'info', null);
      accept.focus();
    });
    accept.addEventListener('click', async () => {
      show('saving', 'info', 'Pairing…');
      const r = await send('ui:pair-accept', { routing: routing.checked });
      if (!r.ok) return show('error', false, r.message);
      show('done', r.routing && !r.routing.on ? 'partly' : true, r.message);
      onPaired(r);
    });
    cancel.addEventListener('click', async () => {
      await send('ui:pair-cancel');
      show('idle', 'info', null);
    });
    // back to the button, unless the user is in the middle of it (an old outcome must not greet a new situation)
    box.reset = () => {
      if (!['asking', 'confirm', 'saving'].includes(box.dataset.pairState)) show('idle', 'info', null);
    };
    return box;
  }

  root.CWPair = Object.freeze({ create });
})(globalThis);
