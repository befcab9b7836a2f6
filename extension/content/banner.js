/* consentwatch banner: runs only on the platforms' own pages (after lib/common.js, see the manifest).
 *
 * Asks the service worker for the active warnings that concern this host and shows them in a
 * small card inside a shadow root, so the page's styles and ours never touch. Updates when the
 * worker pushes a change (a warning that arrives after the page loaded, or one dismissed elsewhere).
 * Reads nothing from the page; builds every node with textContent (no HTML from anywhere). */
(() => {
  'use strict';

  if (window.top !== window || globalThis.__consentwatchBanner) return;
  globalThis.__consentwatchBanner = true;

  const { CW } = globalThis;
  const ext = globalThis.browser ?? globalThis.chrome;
  const INBOUND = CW.TO_PAGE.warnings; // the only message type this script accepts
  const MAX_SHOWN = 3;

  const CSS = `
    :host { all: initial !important; position: fixed !important; top: 16px !important; right: 16px !important;
      z-index: 2147483647 !important; display: block !important; }
    * { box-sizing: border-box; }
    .card { width: min(392px, calc(100vw - 32px)); max-height: calc(100vh - 32px); overflow: auto;
      background: #ffffff; color: #1c1917; border: 1px solid #e7e5e4; border-radius: 14px;
      box-shadow: 0 18px 40px rgba(28, 25, 23, 0.14), 0 2px 6px rgba(28, 25, 23, 0.08);
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif;
      -webkit-font-smoothing: antialiased; animation: cw-in 180ms ease-out; }
    @keyframes cw-in { from { opacity: 0; transform: translateY(-6px); } to { opacity: 1; transform: none; } }
    @media (prefers-reduced-motion: reduce) { .card { animation: none; } }
    .top { display: flex; align-items: center; gap: 8px; padding: 12px 12px 0 16px; }
    .mark { width: 18px; height: 18px; flex: none; }
    .brand { font-size: 12px; font-weight: 600; color: #115e59; letter-spacing: 0.01em; }
    .platform { font-size: 12px; color: #78716c; }
    .close { margin-left: auto; border: 0; background: transparent; color: #78716c; width: 28px; height: 28px;
      border-radius: 8px; font: 20px/1 system-ui, sans-serif; cursor: pointer; display: grid; place-items: center; }
    .close:hover { background: #f5f5f4; color: #1c1917; }
    .warning { padding: 8px 16px 16px; }
    .warning + .warning { border-top: 1px solid #f0efed; padding-top: 14px; }
    .chip { display: inline-block; font-size: 11.5px; font-weight: 600; color: #92400e; background: #fef3c7;
      border-radius: 999px; padding: 2px 9px; margin-bottom: 6px; }
    h2 { margin: 0 0 6px; font-size: 16px; line-height: 1.35; font-weight: 650; color: #1c1917; }
    .summary { margin: 0 0 8px; color: #44403c; }
    .meta { margin: 0 0 10px; font-size: 12.5px; color: #78716c; }
    .meta span + span::before { content: "·"; margin: 0 6px; color: #a8a29e; }
    .label { font-size: 11.5px; font-weight: 600; letter-spacing: 0.04em; text-transform: uppercase; color: #78716c; margin: 0 0 5px; }
    ol { list-style: none; margin: 0 0 10px; padding: 0; line-height: 1.95; font-size: 13px; color: #292524; }
    li { display: inline-block; max-width: 100%; }
    li > span { background: #f5f5f4; border-radius: 6px; padding: 2px 7px; -webkit-box-decoration-break: clone; box-decoration-break: clone; }
    li:not(:last-child)::after { content: "›"; color: #a8a29e; margin: 0 4px 0 5px; }
    .note { margin: 0 0 12px; font-size: 12.5px; color: #78716c; }
    .actions { display: flex; gap: 8px; flex-wrap: wrap; }
    button.primary, button.secondary { font: 600 13.5px/1 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
      border-radius: 9px; padding: 9px 14px; cursor: pointer; }
    button.primary { background: #115e59; color: #ffffff; border: 1px solid #115e59; }
    button.primary:hover { background: #134e4a; }
    button.secondary { background: #ffffff; color: #44403c; border: 1px solid #d6d3d1; }
    button.secondary:hover { background: #fafaf9; }
    button:focus-visible { outline: 2px solid #0f766e; outline-offset: 2px; }
    .more { margin: 0; padding: 0 16px 14px; font-size: 12.5px; color: #78716c; }
    .error { color: #b91c1c; font-size: 12.5px; margin: 8px 0 0; }
    @media (prefers-color-scheme: dark) {
      .card { background: #1c1917; color: #f5f5f4; border-color: #44403c; box-shadow: 0 18px 40px rgba(0,0,0,.5); }
      h2 { color: #fafaf9; } .summary { color: #d6d3d1; } .brand { color: #5eead4; }
      .meta, .platform, .label, .note, .more, .close { color: #a8a29e; }
      li { color: #e7e5e4; } li > span { background: #292524; }
      .chip { background: #451a03; color: #fcd34d; }
      button.primary { background: #14b8a6; border-color: #14b8a6; color: #042f2e; }
      button.secondary { background: transparent; color: #e7e5e4; border-color: #57534e; }
      .close:hover { background: #292524; color: #fafaf9; }
    }`;

  let host = null;
  let current = [];
  const hidden = new Set(); // closed with × on this page view

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  function markSvg() {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', 'mark');
    svg.setAttribute('aria-hidden', 'true');
    const shield = document.createElementNS(NS, 'path');
    shield.setAttribute('d', 'M12 2.5 4 5.6v6.1c0 4.7 3.3 8.7 8 9.8 4.7-1.1 8-5.1 8-9.8V5.6L12 2.5Z');
    shield.setAttribute('fill', '#115e59');
    const eye = document.createElementNS(NS, 'path');
    eye.setAttribute('d', 'M7 12c1.3-2.1 3-3.2 5-3.2s3.7 1.1 5 3.2c-1.3 2.1-3 3.2-5 3.2S8.3 14.1 7 12Z');
    eye.setAttribute('fill', '#ffffff');
    const pupil = document.createElementNS(NS, 'circle');
    pupil.setAttribute('cx', '12');
    pupil.setAttribute('cy', '12');
    pupil.setAttribute('r', '1.7');
    pupil.setAttribute('fill', '#115e59');
    svg.append(shield, eye, pupil);
    return svg;
  }

  function send(message) {
    return ext.runtime.sendMessage(message).then((reply) => {
      if (!reply || !reply.ok) throw new Error((reply && reply.error) || 'no answer');
      return reply.result;
    });
  }

  function warningSection(w, isFirst) {
    const section = el('section', 'warning');
    section.dataset.warningId = w.id;
    section.append(el('span', 'chip', CW.KINDS[w.kind] || CW.KINDS.toggle_on));
    const h2 = el('h2');
    if (isFirst) {
      h2.id = 'cw-title';
      h2.append(document.createElement('slot')); // the heading text lives in the light DOM (see render)
    } else {
      h2.textContent = w.title;
    }
    section.append(h2);
    if (w.summary) section.append(el('p', 'summary', w.summary));

    const meta = el('p', 'meta');
    const since = CW.formatDate(w.first_seen);
    if (since) meta.append(el('span', null, `Seen since ${since}`));
    if (w.kind === 'policy_update' && w.effective_date) meta.append(el('span', null, `Effective ${CW.formatDate(w.effective_date)}`));
    if (w.region_affected === true) meta.append(el('span', null, 'Applies where you live'));
    if (w.region_affected === false) meta.append(el('span', null, 'Not in force where you live yet'));
    if (meta.childNodes.length) section.append(meta);

    const steps = (w.remedy && w.remedy.steps) || [];
    if (steps.length) {
      section.append(el('p', 'label', 'How to switch it off'));
      const ol = el('ol');
      ol.setAttribute('aria-label', 'Steps');
      steps.forEach((s) => {
        const li = el('li');
        li.append(el('span', null, CW.stepLabel(s)));
        ol.append(li);
      });
      section.append(ol);
    }
    if (w.remedy && w.remedy.note) section.append(el('p', 'note', w.remedy.note));

    const actions = el('div', 'actions');
    const error = el('p', 'error');
    error.hidden = true;
    if ((w.remedy && w.remedy.settings_url) || w.url) {
      const open = el('button', 'primary', `Open ${w.platform_name} setting`);
      open.type = 'button';
      open.dataset.action = 'open-settings';
      open.addEventListener('click', () => {
        send({ type: 'page:open-settings', id: w.id }).catch((e) => {
          error.textContent = `Could not open the setting: ${e.message}`;
          error.hidden = false;
        });
      });
      actions.append(open);
    }
    const dismiss = el('button', 'secondary', 'Dismiss');
    dismiss.type = 'button';
    dismiss.dataset.action = 'dismiss';
    dismiss.title = 'Stop warning me about this';
    dismiss.addEventListener('click', () => {
      dismiss.disabled = true;
      send({ type: 'page:dismiss', id: w.id })
        .then(() => {
          hidden.add(w.id);
          render(current);
        })
        .catch((e) => {
          dismiss.disabled = false;
          error.textContent = `Could not dismiss: ${e.message}`;
          error.hidden = false;
        });
    });
    actions.append(dismiss);
    section.append(actions, error);
    return section;
  }

  // A constructed stylesheet is not subject to the page's CSP (style-src); fall back to <style>.
  function applyStyles(shadow) {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
      if (shadow.adoptedStyleSheets.length === 1) return;
    } catch {
      /* Firefox content scripts may refuse adopted sheets across compartments */
    }
    const style = document.createElement('style');
    style.textContent = CSS;
    shadow.append(style);
  }

  function removeBanner() {
    if (host) host.remove();
    host = null;
  }

  function render(warnings) {
    current = Array.isArray(warnings) ? warnings : [];
    const visible = current.filter((w) => w && typeof w.id === 'string' && !hidden.has(w.id));
    if (!visible.length) {
      removeBanner();
      return;
    }
    const first = visible[0];
    const platformName = first.platform_name || first.platform;
    removeBanner();

    host = document.createElement('consentwatch-banner');
    host.setAttribute('data-consentwatch-banner', '');
    host.setAttribute('data-platform', String(first.platform || ''));
    host.setAttribute('data-warning-ids', visible.map((w) => w.id).join(' '));
    host.setAttribute('role', 'region');
    host.setAttribute('aria-label', `consentwatch: ${platformName} and AI training`);
    host.setAttribute('aria-live', 'polite');
    // Light-DOM text = the first heading, slotted into the shadow card: visible as the title, and what
    // the element's own text says (screen readers, tests) without the page being able to restyle it.
    const heading = first.title.toLowerCase().includes(platformName.toLowerCase()) ? first.title : `${platformName}: ${first.title}`;
    host.append(document.createTextNode(heading));

    const shadow = host.attachShadow({ mode: 'open' });
    applyStyles(shadow);

    const card = el('div', 'card');
    card.setAttribute('aria-labelledby', 'cw-title');
    const top = el('div', 'top');
    top.append(markSvg(), el('span', 'brand', 'consentwatch'), el('span', 'platform', `on ${platformName}`));
    const close = el('button', 'close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Hide for now');
    close.title = 'Hide for now (the warning stays in the consentwatch popup)';
    close.addEventListener('click', () => {
      visible.forEach((w) => hidden.add(w.id));
      removeBanner();
    });
    top.append(close);
    card.append(top);

    visible.slice(0, MAX_SHOWN).forEach((w, i) => card.append(warningSection(w, i === 0)));
    if (visible.length > MAX_SHOWN) {
      card.append(el('p', 'more', `${visible.length - MAX_SHOWN} more in the consentwatch popup.`));
    }
    card.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') close.click();
    });
    shadow.append(card);
    document.documentElement.append(host);
  }

  ext.runtime.onMessage.addListener((msg, sender) => {
    if (!sender || sender.id !== ext.runtime.id || sender.tab) return false; // only our own worker
    if (!msg || typeof msg !== 'object' || msg.type !== INBOUND) return false;
    render(msg.warnings);
    return false;
  });

  send({ type: 'page:get' })
    .then((result) => render(result && result.warnings))
    .catch(() => {
      /* worker asleep or extension reloaded: it pushes to us when warnings exist */
    });
})();
