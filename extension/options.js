/* consentwatch options: API address and pairing token, stored in storage.local (the worker reacts). */
'use strict';

const ext = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);

function showResult(ok, text) {
  const box = $('result');
  box.dataset.ok = String(ok);
  box.textContent = text;
  box.hidden = false;
}

function readForm() {
  const base = CW.normalizeApiBase($('apiBase').value);
  const token = CW.normalizeToken($('token').value);
  $('apiBase').setAttribute('aria-invalid', String(!base.ok));
  $('token').setAttribute('aria-invalid', String(!token.ok));
  if (!base.ok) return { error: base.error };
  if (!token.ok) return { error: token.error };
  return { apiBase: base.value, token: token.value };
}

async function load() {
  const got = await ext.storage.local.get(['apiBase', 'token']);
  $('apiBase').value = got.apiBase || CW.DEFAULT_API_BASE;
  $('token').value = got.token || '';
}

$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = readForm();
  if (form.error) return showResult(false, form.error);
  await ext.storage.local.set({ apiBase: form.apiBase, token: form.token });
  $('apiBase').value = form.apiBase;
  showResult('info', 'Saved. Testing the connection…');
  await runTest(form);
});

/** Tests the address and token; once consentwatch accepts them they are saved (a tested token that stayed unsaved
 * left the popup "Not paired"). */
async function runTest(form) {
  $('test').disabled = true;
  try {
    const reply = await ext.runtime.sendMessage({ type: 'ui:test-connection', apiBase: form.apiBase, token: form.token });
    const r = reply && reply.ok ? reply.result : { ok: false, message: (reply && reply.error) || 'The extension did not answer.' };
    if (r.ok) {
      const saved = await ext.storage.local.get(['apiBase', 'token']);
      if (saved.apiBase !== form.apiBase || saved.token !== form.token) {
        await ext.storage.local.set({ apiBase: form.apiBase, token: form.token });
      }
      $('apiBase').value = form.apiBase;
      showResult(true, `${r.message} Saved.`);
    } else {
      showResult(false, r.message);
    }
  } finally {
    $('test').disabled = false;
  }
}

$('test').addEventListener('click', () => {
  const form = readForm();
  if (form.error) return showResult(false, form.error);
  showResult('info', 'Testing…');
  runTest(form);
});

$('pair-box').append(CWPair.create({
  onPaired: async () => {
    await load(); // the paste fields show what pairing saved
    $('result').hidden = true;
  },
}));

$('show-token').addEventListener('click', (ev) => {
  const input = $('token');
  const show = input.type === 'password';
  input.type = show ? 'text' : 'password';
  ev.currentTarget.textContent = show ? 'Hide' : 'Show';
  ev.currentTarget.setAttribute('aria-pressed', String(show));
});

load();
