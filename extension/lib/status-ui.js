/* consentwatch: how the popup and the first-run page show a status action (status.js's {kind, …}) and what its
 * buttons do. A plain script (the pages load it with <script>); exposes one frozen global, CWStatusUI. */
'use strict';

(function (root) {
  const ext = root.browser ?? root.chrome;

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

  /** Where the page eye runs (the manifest's content scripts): what "Allow reading their pages" asks for. */
  function pageOrigins() {
    return [...new Set((ext.runtime.getManifest().content_scripts || []).flatMap((cs) => cs.matches || []))];
  }

  /** Does what a status button says; resolves to the new UI state when the worker gives one. */
  async function run(id) {
    switch (id) {
      case 'pair':
        return send('ui:open-options');
      case 'routing-on':
        await send('ui:set-routing', { enabled: true });
        return send('ui:get-state');
      case 'reapply':
        return send('ui:reapply');
      case 'retry':
        return send('ui:refresh');
      case 'grant-pages':
        // must run in the page, on the click: the browser asks the person
        await ext.permissions.request({ origins: pageOrigins() });
        return send('ui:get-state');
      default:
        throw new Error(`unknown action ${id}`);
    }
  }

  /** The action as nodes: "Run <code>cmd</code> in a terminal, then …", a button, or words. */
  function actionNodes(action, { onDone = () => {}, onError = () => {}, primary = true } = {}) {
    if (!action) return [];
    if (action.kind === 'command') {
      return [el('p', { class: 'do', dataset: { command: action.command } }, 'Run ', el('code', {}, action.command),
        ' in a terminal', action.then ? `, ${action.then}.` : '.')];
    }
    if (action.kind === 'button') {
      return [el('button', {
        type: 'button',
        class: `btn ${primary ? 'primary' : 'secondary'}`,
        dataset: { action: action.id },
        onclick: (ev) => {
          const b = ev.currentTarget;
          b.disabled = true;
          run(action.id).then((state) => onDone(state, action.id), onError).finally(() => { b.disabled = false; });
        },
      }, action.label)];
    }
    return [el('p', { class: action.kind === 'wait' ? 'do wait' : 'do' }, action.text)];
  }

  root.CWStatusUI = Object.freeze({ el, send, run, actionNodes, pageOrigins });
})(globalThis);
