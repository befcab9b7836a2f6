/* consentwatch page eye: reads the rendered page on a rule host, never changes it.
 *
 * Most settings pages are single-page apps: the switch exists only in the DOM the browser builds, so the proxy
 * cannot see it. This script watches the DOM (a MutationObserver whose records are only collected, then
 * handled in idle time in slices of a few ms) for a rule's labels next to a control, and for policy-change
 * dialogs, and sends the smallest region that holds them to the worker, which posts it to consentwatch
 * (POST /v1/observations). The same detectors as the proxy's read it there.
 *
 * What a region holds: the markup of the element that contains the label and its control, rebuilt from the
 * live DOM: a checkbox's `checked` property and an option's `selected` written as attributes, aria-* as they
 * are, elements the user cannot see marked `hidden`; scripts, styles, media, frames, form values (value,
 * textarea and editable text), data-* and event attributes dropped, links cut to scheme://host/path.
 * It never clicks, types, focuses or writes anything into the page. Idle, it costs nothing: no timers run
 * unless something changed. */
(() => {
  'use strict';

  if (window.top !== window || globalThis.__consentwatchEye) return;

  const { CW } = globalThis;
  const ext = globalThis.browser ?? globalThis.chrome;
  const INBOUND = CW.TO_PAGE.rules; // the only message type this script accepts

  const CONTROL_SEL = 'input[type=checkbox], input[type=radio], select, [role=switch], [role=checkbox], [role=radio], '
    + '[role=menuitemcheckbox], [role=menuitemradio], [role=combobox], [role=listbox], [aria-checked], [aria-pressed], '
    + 'button[aria-haspopup]';
  const NOTICE_SEL = 'dialog, aside, [role=dialog], [role=alertdialog], [role=alert], [role=status], [role=banner], '
    + '[role=region], [role=note], [role=complementary], [aria-modal=true], [aria-live]';
  const NOTICE_HINT = /banner|notice|notif|modal|dialog|toast|alert|announce|callout|interstitial|snackbar|consent|policy|terms|upsell|message|popup|overlay|sheet|prompt/i;
  const POLICY_ANCHORS = ['privacy', 'terms', 'agreement', 'polic', 'how we '];
  const POLICY = String.raw`(?:privacy (?:policy|notice|statement)|user agreement|terms(?: of (?:service|use))?|consumer terms|policies|data (?:use )?policy|privacy|policy|notice)`;
  const CHANGE = String.raw`(?:updat\w*|chang\w*|revis\w*|amend\w*|new)`;
  const CHANGE_RX = new RegExp(String.raw`\b${CHANGE}\W+(?:[\w'-]+\W+){0,6}?${POLICY}\b|\b${POLICY}\W+(?:[\w'-]+\W+){0,6}?${CHANGE}`
    + String.raw`|\b${CHANGE}\W+(?:[\w'-]+\W+){0,3}?how we (?:use|process|handle|share|collect)\b`);
  const COOKIE_POLICY = /cookies?\s+(?:policy|notice|statement|settings|preferences)/g;

  // Never serialised: code, styles, media, frames, and the banner this extension itself draws.
  const DROP = new Set(['script', 'style', 'link', 'meta', 'noscript', 'template', 'iframe', 'frame', 'frameset', 'object',
    'embed', 'img', 'picture', 'video', 'audio', 'source', 'track', 'canvas', 'svg', 'math', 'head', 'base', 'map',
    'consentwatch-banner']);
  const VOID = new Set(['area', 'br', 'col', 'hr', 'input', 'wbr']);
  const KEEP_ATTRS = new Set(['id', 'for', 'class', 'role', 'type', 'name', 'title', 'href', 'disabled', 'hidden', 'open',
    'multiple', 'lang', 'dir']);
  const WATCHED_ATTRS = ['aria-checked', 'aria-pressed', 'aria-selected', 'aria-label', 'aria-hidden', 'aria-expanded',
    'aria-disabled', 'aria-busy', 'checked', 'selected', 'disabled', 'hidden', 'class', 'style', 'open', 'title'];

  const MAX_REGION = CW.EYE.MAX_REGION;
  const API_MAX_BYTES = 64 * 1024;
  const MAX_NODES = 4000; // elements and text nodes per region
  const MAX_NOTICE_TEXT = 20_000; // a notice longer than this is a page, not a dialog
  const CLIMB = 6; // ancestors to climb from a label to the element that also holds its control
  const SLICE_MS = 8; // work per idle slice; the rest waits for the next one
  const SETTLE_MS = 250; // a region is sent once it has stayed the same this long (no half-drawn states)
  const MIN_DELAY_MS = 50; // coalescing: mutations within this window are handled together
  const MAX_DELAY_MS = 2_000; // ... stretched up to this on a page that keeps us busy

  const stats = { batches: 0, records: 0, slices: 0, busyMs: 0, lastSliceMs: 0, maxSliceMs: 0, sliceMs: [],
    observerMs: 0, sent: 0, fullScans: 0, timers: 0, configureMs: 0, errors: 0 };

  /* ------------------------------------------------------------ rules for this page ----------------- */

  let config = null; // {settings: [{id, phrases: [{text, anchor}], pages: RegExp[]}], notices: [{id, about: RegExp, anchors}]}

  function anchorOf(phrase) {
    return (phrase.match(/[a-z0-9]+/g) || []).reduce((a, b) => (b.length > a.length ? b : a), '');
  }

  function compile(eye) {
    const settings = (eye.settings || []).map((s) => ({
      id: s.id,
      phrases: s.phrases.map((text) => ({ text, anchor: anchorOf(text) })).filter((p) => p.anchor),
      pages: (s.pages || []).map((g) => CW.globToRegExp(g)),
    })).filter((s) => s.phrases.length);
    const notices = (eye.notices || []).map((n) => {
      const alts = n.about.map((a) => (a.match(/[a-z0-9]+/g) || []).join(String.raw`\W*`)).filter(Boolean);
      return { id: n.id, about: new RegExp(String.raw`(?<![a-z0-9])(?:${alts.join('|')})`), anchors: n.about.map(anchorOf) };
    }).filter((n) => n.anchors.length);
    return { settings, notices };
  }

  function activeSettings() {
    const path = location.pathname || '/';
    return config.settings.filter((s) => !s.pages.length || s.pages.some((rx) => rx.test(path)));
  }

  /* ------------------------------------------------------------ reading the DOM --------------------- */

  const isControl = (el) => el.nodeType === 1 && el.matches(CONTROL_SEL);
  const inBanner = (node) => Boolean(node && node.closest && node.closest('consentwatch-banner'));

  function visible(el) {
    if (typeof el.checkVisibility === 'function') {
      if (el.checkVisibility({ checkVisibilityCSS: true, visibilityProperty: true })) return true;
      return getComputedStyle(el).display === 'contents';
    }
    return el.getClientRects().length > 0;
  }

  function closedShadow(el) {
    try {
      if (ext.dom && ext.dom.openOrClosedShadowRoot) return ext.dom.openOrClosedShadowRoot(el);
      return el.openOrClosedShadowRoot || null;
    } catch {
      return null;
    }
  }

  const escText = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const escAttr = (s) => escText(s).replace(/"/g, '&quot;');

  function attrsOf(el, hideIt) {
    let out = '';
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      if (!(KEEP_ATTRS.has(name) || name.startsWith('aria-'))) continue; // value, style, on*, data-*, src...
      let value = a.value;
      if (name === 'href') {
        value = CW.cleanUrl(value, location.href);
        if (!value) continue;
      }
      out += ` ${name}="${escAttr(value.slice(0, 500))}"`;
    }
    const tag = el.localName;
    if (tag === 'input' && (el.type === 'checkbox' || el.type === 'radio') && el.checked) out += ' checked';
    if (tag === 'input' && el.indeterminate && !el.hasAttribute('aria-checked')) out += ' aria-checked="mixed"';
    if (tag === 'option' && el.selected) out += ' selected';
    if (hideIt && !el.hasAttribute('hidden')) out += ' hidden';
    return out;
  }

  /** The markup of `roots` (in order), cleaned as the header says; null when it would exceed `max`. */
  function serialize(roots, max = MAX_REGION) {
    const out = [];
    let len = 0;
    let nodes = 0;
    let over = false;
    const push = (s) => {
      out.push(s);
      len += s.length;
      if (len > max) over = true;
    };
    const walk = (node, hiddenAbove) => {
      if (over || ++nodes > MAX_NODES) {
        over = true;
        return;
      }
      if (node.nodeType === 3) {
        const t = node.data.replace(/\s+/g, ' ');
        if (t) push(escText(t));
        return;
      }
      if (node.nodeType !== 1) return;
      const tag = node.localName;
      if (DROP.has(tag) || !/^[a-z][a-z0-9-]*$/.test(tag)) return;
      const hideIt = !hiddenAbove && !isControl(node) && tag !== 'option' && !visible(node);
      push(`<${tag}${attrsOf(node, hideIt)}>`);
      if (VOID.has(tag)) return;
      // form values and editable text are the user's, not the page's
      if (tag !== 'textarea' && !(node.isContentEditable && !(node.parentElement && node.parentElement.isContentEditable))) {
        const shadow = node.shadowRoot || (tag.includes('-') ? closedShadow(node) : null);
        const kids = shadow ? shadow.childNodes : node.childNodes;
        for (const child of kids) {
          if (child.nodeType === 1 && child.localName === 'slot') {
            for (const n of child.assignedNodes({ flatten: true })) walk(n, hiddenAbove || hideIt);
          } else {
            walk(child, hiddenAbove || hideIt);
          }
          if (over) return;
        }
      }
      push(`</${tag}>`);
    };
    for (const r of roots) walk(r, false);
    if (over) return null;
    const html = out.join('');
    // the API takes 64 KiB of UTF-8: characters past ASCII take up to 3 bytes each
    return html.length * 3 <= API_MAX_BYTES || new TextEncoder().encode(html).length <= API_MAX_BYTES ? html : null;
  }

  // norm() for a whole page's text: plain ASCII needs only lower case and collapsed whitespace (the full
  // norm, with its Unicode normalisation, runs when there is anything else)
  function quickNorm(text) {
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(text)) return CW.norm(text);
    return text.replace(/\s+/g, ' ').trim().toLowerCase();
  }

  /** The smallest elements under `root` whose text (or accessible-name attribute) holds one of `phrases`. */
  function findHits(root, phrases) {
    const hits = [];
    if (!root || inBanner(root)) return hits;
    const raw = root.textContent || '';
    const low = raw.toLowerCase();
    // the whole phrase must be there, not just its longest word: a feed full of "training" costs one check
    const withAnchor = phrases.filter((p) => low.includes(p.anchor));
    const present = withAnchor.length ? (() => {
      const flat = quickNorm(raw);
      return withAnchor.filter((p) => flat.includes(p.text));
    })() : [];
    if (present.length) {
      const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      const seen = new Set();
      for (let t = walker.nextNode(); t; t = walker.nextNode()) {
        const data = t.data.toLowerCase();
        const p0 = present.filter((p) => data.includes(p.anchor));
        if (!p0.length) continue;
        let el = t.parentElement;
        if (!el || DROP.has(el.localName) || seen.has(el) || inBanner(el)) continue;
        for (let i = 0; el && i < CLIMB; i += 1, el = el.parentElement) {
          const rawText = el.textContent || '';
          if (rawText.length > 8000) break; // a container of many things, not a label
          const text = CW.norm(rawText);
          const p = p0.find((x) => text.includes(x.text));
          if (p) {
            if (!seen.has(el)) hits.push({ el, phrase: p.text });
            seen.add(el);
            break;
          }
        }
      }
    }
    // names that live in attributes: aria-label, title (a button whose name carries the state)
    const named = root.nodeType === 1 && root.matches('[aria-label], [title]') ? [root] : [];
    named.push(...root.querySelectorAll('[aria-label], [title]'));
    for (const el of named) {
      const v = `${el.getAttribute('aria-label') || ''} ${el.getAttribute('title') || ''}`.toLowerCase();
      const cand = phrases.filter((p) => v.includes(p.anchor));
      if (!cand.length || inBanner(el)) continue;
      const n = CW.norm(v);
      const p = cand.find((x) => n.includes(x.text));
      if (p) hits.push({ el, phrase: p.text });
    }
    return hits;
  }

  /** A custom element whose (open or closed) shadow root holds the control: the element stands for it. */
  function shadowControlHost(el) {
    for (let n = el, i = 0; n && i < 3; n = n.parentElement, i += 1) {
      const shadow = n.localName.includes('-') ? n.shadowRoot || closedShadow(n) : null;
      if (shadow && shadow.querySelector(CONTROL_SEL)) return n;
    }
    return null;
  }

  function controlFor(el) {
    if (isControl(el)) return el;
    const label = el.localName === 'label' ? el : el.closest('label');
    if (label && label.control && (label === el || label.contains(el))) return label.control;
    const inside = el.querySelector(CONTROL_SEL);
    if (inside) return inside;
    for (let n = el, i = 0; n && i < 3; n = n.parentElement, i += 1) {
      if (n.id) {
        const esc = CSS.escape(n.id);
        const c = document.querySelector(`[aria-labelledby~="${esc}"], [aria-describedby~="${esc}"]`);
        if (c) return c;
      }
    }
    return shadowControlHost(el);
  }

  function commonAncestor(a, b) {
    for (let n = a; n; n = n.parentElement) if (n.contains(b)) return n;
    return null;
  }

  /** A radio's whole group (the chosen option tells the state, whichever option the label names), or null. */
  function radioGroup(control) {
    const isRadio = (control.localName === 'input' && control.type === 'radio') || control.getAttribute('role') === 'radio';
    if (!isRadio) return null;
    const group = control.closest('fieldset, [role=radiogroup]');
    if (group) return group;
    if (!control.name) return null;
    let lca = control;
    const scope = control.form || document;
    for (const other of scope.querySelectorAll(`input[type=radio][name="${CSS.escape(control.name)}"]`)) {
      lca = commonAncestor(lca, other) || lca;
    }
    return lca === control ? null : lca;
  }

  /** {roots, direct} to serialise for a label hit, or null when no control goes with it (yet). */
  function regionFor(hit) {
    const el = hit.el;
    const control = controlFor(el);
    if (control) {
      const group = radioGroup(control);
      let lca = commonAncestor(el, group || control);
      if (lca === control && control.parentElement && (control.parentElement.textContent || '').length < 2000) {
        lca = control.parentElement; // a control named by its own attributes: keep the text beside it
      }
      if (lca && lca !== document.body && lca !== document.documentElement) return { roots: [lca], direct: true, control, label: el };
      return { roots: [el, control.parentElement || control], direct: true, control, label: el }; // far apart: both
    }
    let n = el.parentElement;
    for (let i = 0; n && i < CLIMB && n !== document.body; i += 1, n = n.parentElement) {
      const c = n.querySelector(CONTROL_SEL);
      if (c) return { roots: [n], direct: false, control: c, label: el };
    }
    return null;
  }

  /* ------------------------------------------------------------ what was seen, what was sent --------- */

  let tracked = new Map(); // key -> {roots, reason}: the regions being watched for changes
  const lastSent = new Map(); // key -> markup sent last
  const candidates = new Map(); // key -> {html, reason, due}
  let settleTimer = null;
  // A label seen without a control (the switch not drawn yet), or hidden: the page is looked at again after it
  // changes, at most once per `pendingGap` ms (1 s, doubling to 30 s while the label stays alone), and once more
  // when that gap is over if a change came during it.
  let pendingLabels = false;
  let lastPendingScan = -Infinity;
  let pendingGap = 1000;
  let pendingRetry = false;
  let pendingTimer = null;

  function consider(key, reason, html) {
    if (lastSent.get(key) === html) {
      candidates.delete(key);
      return;
    }
    const c = candidates.get(key);
    if (c && c.html === html) return;
    candidates.set(key, { html, reason, due: performance.now() + SETTLE_MS });
    armSettle();
  }

  function armSettle() {
    if (settleTimer || !candidates.size) return;
    const due = Math.min(...[...candidates.values()].map((c) => c.due));
    stats.timers += 1;
    settleTimer = setTimeout(() => {
      settleTimer = null;
      const now = performance.now();
      for (const [key, c] of candidates) {
        if (c.due > now) continue;
        candidates.delete(key);
        lastSent.set(key, c.html);
        stats.sent += 1;
        ext.runtime.sendMessage({ type: 'page:observe', url: location.href, html: c.html, reason: c.reason, key })
          .catch(() => lastSent.delete(key)); // the worker was away: send it again next time it changes
      }
      armSettle();
    }, Math.max(0, due - performance.now()));
  }

  /** Look at the whole page for these rules' settings again, and watch the regions found. */
  function evaluateSettings(settings) {
    stats.fullScans += 1;
    const body = document.body;
    if (!body) return;
    for (const s of settings) {
      for (const key of [...tracked.keys()]) if (key.startsWith(`${s.id}#`)) tracked.delete(key);
      const regions = [];
      for (const hit of findHits(body, s.phrases)) {
        if (!visible(hit.el)) {
          pendingLabels = true;
          continue;
        }
        const r = regionFor(hit);
        if (!r) {
          pendingLabels = true;
          continue;
        }
        if (!regions.some((x) => x.roots[0] === r.roots[0])) regions.push(r);
      }
      // the innermost regions: a heading's region that holds a setting's row adds nothing to the row
      const inner = regions.filter((r) => !regions.some((o) => o !== r && r.roots[0].contains(o.roots[0])));
      inner.sort((a, b) => (a.roots[0].compareDocumentPosition(b.roots[0]) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
      inner.forEach((r, i) => {
        let roots = r.roots;
        let html = serialize(roots);
        if (html === null && r.direct && roots.length === 1) {
          // label and control far apart in a big section: the two of them, side by side (ids kept, so
          // aria-labelledby and label[for] still name the control)
          for (const pair of [[r.label, r.control.parentElement || r.control], [r.label, r.control]]) {
            if (pair[0].contains(pair[1]) || pair[1].contains(pair[0])) continue;
            html = serialize(pair);
            if (html !== null) {
              roots = pair;
              break;
            }
          }
        }
        if (html === null) return;
        const key = `${s.id}#${i}`;
        tracked.set(key, { roots, reason: 'setting', rule: s.id });
        consider(key, 'setting', html);
      });
    }
  }

  function judgeNotice(el) {
    const raw = el.textContent || '';
    if (raw.length > MAX_NOTICE_TEXT || !visible(el)) return [];
    const t = CW.norm(raw);
    if (!CHANGE_RX.test(t.replace(COOKIE_POLICY, ' '))) return [];
    return config.notices.filter((n) => n.about.test(t));
  }

  function noticeRegion(el) {
    const html = serialize([el]);
    if (html !== null) return html;
    // a long dialog: its text, in a container that still says what it is
    const tag = el.localName === 'dialog' || el.localName === 'aside' ? el.localName : 'div';
    const text = escText(CW.norm(el.textContent).slice(0, 6000)); // at most ~18 KiB of UTF-8
    return `<${tag}${attrsOf(el, false)}><p>${text}</p></${tag}>`;
  }

  function scanNotices(root) {
    if (!config.notices.length || !root || root.nodeType !== 1 || inBanner(root)) return;
    const low = (root.textContent || '').toLowerCase();
    if (!POLICY_ANCHORS.some((a) => low.includes(a))) return;
    if (!config.notices.some((n) => n.anchors.some((a) => low.includes(a)))) return;
    const cands = new Set();
    const hinted = (el) => el.matches(NOTICE_SEL) || NOTICE_HINT.test(`${el.getAttribute('class') || ''} ${el.id || ''}`);
    for (let n = root, i = 0; n && i < 5 && n !== document.body; n = n.parentElement, i += 1) if (hinted(n)) cands.add(n);
    let k = 0;
    for (const el of root.querySelectorAll(NOTICE_SEL)) {
      cands.add(el);
      if ((k += 1) > 50) break;
    }
    let best = null;
    for (const el of cands) {
      if (el.closest('article, blockquote, q, cite')) continue; // an article quoting a notice is not one
      const rules = judgeNotice(el);
      if (rules.length && (!best || (el.textContent || '').length < (best.el.textContent || '').length)) best = { el, rules };
    }
    if (best) {
      const key = `notice:${best.rules.map((r) => r.id).join(',')}`;
      tracked.set(key, { roots: [best.el], reason: 'notice' });
      consider(key, 'notice', noticeRegion(best.el));
    }
  }

  /* ------------------------------------------------------------ changes ----------------------------- */

  const dirty = new Set(); // elements added or whose text changed
  let attrTargets = new Set();
  let stateTouched = false; // a change/input event: a control's property may have changed without a mutation
  let scheduled = null;
  let delay = MIN_DELAY_MS;
  let lastPath = location.pathname;
  const recent = []; // [time, busy ms] of the last slices, to stretch the coalescing delay on a busy page

  function onRecords(records) {
    const t0 = performance.now();
    stats.records += records.length;
    for (const r of records) {
      if (r.type === 'childList') {
        for (const n of r.addedNodes) {
          if (n.nodeType === 1) dirty.add(n);
          else if (n.nodeType === 3 && r.target.nodeType === 1) dirty.add(r.target);
        }
        if (r.removedNodes.length) stateTouched = true; // a watched region may be gone
      } else if (r.type === 'characterData') {
        if (r.target.parentElement) dirty.add(r.target.parentElement);
      } else if (attrTargets.size < 5000) {
        attrTargets.add(r.target);
        if (r.attributeName === 'aria-label' || r.attributeName === 'title') dirty.add(r.target);
      } else {
        stateTouched = true;
      }
    }
    stats.observerMs += performance.now() - t0;
    schedule();
  }

  function onEvent() {
    stateTouched = true;
    schedule();
  }

  function schedule() {
    if (scheduled || !config) return;
    stats.timers += 1;
    scheduled = setTimeout(() => {
      if (typeof requestIdleCallback === 'function') scheduled = requestIdleCallback(run, { timeout: 500 });
      else run(null);
    }, delay);
  }

  function run() {
    scheduled = null;
    if (!config) return;
    const t0 = performance.now();
    stats.batches += 1;
    try {
      work(t0);
    } catch (e) {
      stats.errors += 1; // a page we did not foresee: keep watching, say so once
      if (stats.errors === 1) console.warn('consentwatch page eye:', e);
    }
    const ms = performance.now() - t0;
    stats.slices += 1;
    stats.busyMs += ms;
    stats.lastSliceMs = ms;
    stats.maxSliceMs = Math.max(stats.maxSliceMs, ms);
    if (stats.sliceMs.length < 5000) stats.sliceMs.push(ms);
    // a page that keeps us busy (more than 2 % of the last 10 s) is looked at less often
    recent.push([t0, ms]);
    while (recent.length && recent[0][0] < t0 - 10_000) recent.shift();
    const busy = recent.reduce((a, [, b]) => a + b, 0);
    delay = busy > 200 ? Math.min(MAX_DELAY_MS, delay * 2) : MIN_DELAY_MS;
    if (dirty.size || attrTargets.size || stateTouched || pendingRetry) schedule();
  }

  /** One slice of work: what changed, within SLICE_MS; the rest stays queued. */
  function work(t0) {
    const settings = activeSettings();
    const full = new Set(); // rules whose settings are looked for in the whole page again
    if (location.pathname !== lastPath) { // a single-page app moved on: other rules may apply here
      lastPath = location.pathname;
      settings.forEach((s) => full.add(s.id));
      tracked = new Map([...tracked].filter(([k]) => k.startsWith('notice:')));
    }
    // attributes changed inside a watched region (aria-checked...), or a change/input event: read them again
    const attrs = [...attrTargets];
    attrTargets = new Set();
    let touched = stateTouched;
    stateTouched = false;
    if (attrs.length && tracked.size && !touched) {
      touched = [...tracked.values()].some(({ roots }) => roots.some((r) => attrs.some((t) => r.contains(t))));
    }
    // what was added or rewritten: each subtree once (not again under an ancestor that is there too)
    const batch = [...dirty];
    dirty.clear();
    const inBatch = new Set(batch);
    let i = 0;
    for (; i < batch.length; i += 1) {
      const root = batch[i];
      if (performance.now() - t0 > SLICE_MS) break;
      if (!root.isConnected || inBanner(root)) continue;
      let covered = false;
      for (let a = root.parentElement, d = 0; a && d < 40 && !covered; a = a.parentElement, d += 1) covered = inBatch.has(a);
      if (covered) continue;
      if (!touched && [...tracked.values()].some((t) => t.roots.some((r) => r.contains(root) || root.contains(r)))) touched = true;
      const low = (root.textContent || '').toLowerCase();
      const named = root.matches('[aria-label], [title]') || root.querySelector('[aria-label], [title]');
      for (const s of settings) {
        if (full.has(s.id) || !(named || s.phrases.some((p) => low.includes(p.anchor)))) continue;
        if (findHits(root, s.phrases).length) full.add(s.id);
      }
      if (pendingLabels && (root.matches(CONTROL_SEL) || root.querySelector(CONTROL_SEL))) full.add('*pending');
      scanNotices(root);
    }
    for (; i < batch.length; i += 1) dirty.add(batch[i]); // the rest: next slice
    if (touched) rereadTracked(full);
    // a label seen without its control, or hidden: look again when the page changed, at most once a second
    if (pendingLabels && (attrs.length || batch.length || full.has('*pending') || pendingRetry)) {
      if (t0 - lastPendingScan >= pendingGap) {
        pendingRetry = false;
        pendingGap = full.has('*pending') ? 1000 : Math.min(30_000, t0 - lastPendingScan < 2 * pendingGap ? pendingGap * 2 : 1000);
        lastPendingScan = t0;
        pendingLabels = false;
        settings.forEach((s) => full.add(s.id));
      } else if (!pendingTimer) {
        pendingTimer = setTimeout(() => {
          pendingTimer = null;
          pendingRetry = true;
          schedule();
        }, pendingGap - (t0 - lastPendingScan));
      }
    }
    full.delete('*pending');
    if (full.size) {
      evaluateSettings(settings.filter((s) => full.has(s.id)));
      armRecheck();
    } else if (touched) {
      armRecheck();
    }
  }

  function rereadTracked(full) {
    for (const [key, t] of tracked) {
      if (t.roots.every((r) => r.isConnected)) {
        const html = t.reason === 'notice' ? noticeRegion(t.roots[0]) : serialize(t.roots);
        if (html !== null) consider(key, t.reason, html);
      } else if (t.rule) {
        full.add(t.rule); // the region is gone (re-rendered): find the setting again
      } else {
        tracked.delete(key);
      }
    }
  }

  // A page can set a checkbox's `checked` property from script (a framework re-rendering after a fetch), which
  // no MutationObserver and no event reports. After something happened, the watched regions are read again a
  // few times (after 0.5, 1, 2, 4, 8 and 16 s), then no more until the next change.
  let recheckTimer = null;
  let recheckStep = 0;
  const RECHECK_MS = [500, 1000, 2000, 4000, 8000, 16000];

  function armRecheck() {
    recheckStep = 0;
    if (!recheckTimer) nextRecheck();
  }

  function nextRecheck() {
    if (recheckStep >= RECHECK_MS.length || !config || !tracked.size) {
      recheckTimer = null;
      return;
    }
    stats.timers += 1;
    recheckTimer = setTimeout(() => {
      recheckStep += 1;
      const t0 = performance.now();
      try {
        const full = new Set();
        rereadTracked(full);
        if (full.size) evaluateSettings(activeSettings().filter((s) => full.has(s.id)));
      } catch (e) {
        stats.errors += 1;
      }
      stats.busyMs += performance.now() - t0;
      nextRecheck();
    }, RECHECK_MS[recheckStep] - (recheckStep ? RECHECK_MS[recheckStep - 1] : 0));
  }

  /* ------------------------------------------------------------ life cycle -------------------------- */

  const observer = new MutationObserver(onRecords);
  let watching = false;

  function start() {
    if (watching) return;
    watching = true;
    observer.observe(document.documentElement, { childList: true, subtree: true, characterData: true, attributes: true,
      attributeFilter: WATCHED_ATTRS });
    document.addEventListener('change', onEvent, { capture: true, passive: true });
    document.addEventListener('input', onEvent, { capture: true, passive: true });
  }

  function stop() {
    if (!watching) return;
    watching = false;
    observer.disconnect();
    document.removeEventListener('change', onEvent, { capture: true });
    document.removeEventListener('input', onEvent, { capture: true });
    if (scheduled) clearTimeout(scheduled);
    scheduled = null;
    if (recheckTimer) clearTimeout(recheckTimer);
    recheckTimer = null;
    if (pendingTimer) clearTimeout(pendingTimer);
    pendingTimer = null;
    dirty.clear();
    attrTargets.clear();
  }

  function configure(eye) {
    if (!eye || typeof eye !== 'object') {
      config = null; // no rule watches this host (any more): nothing to read
      stop();
      return;
    }
    config = compile(eye);
    if (!config.settings.length && !config.notices.length) {
      config = null;
      stop();
      return;
    }
    start();
    const t0 = performance.now();
    tracked = new Map();
    evaluateSettings(activeSettings());
    if (document.body) {
      for (const el of document.querySelectorAll(NOTICE_SEL)) scanNotices(el);
    }
    stats.configureMs = performance.now() - t0;
    stats.busyMs += stats.configureMs;
    armRecheck();
  }

  globalThis.__consentwatchEye = Object.freeze({
    stats: () => ({ ...stats, sliceMs: stats.sliceMs.slice(), watching, tracked: tracked.size, pending: candidates.size,
      timersPending: Boolean(scheduled) || Boolean(settleTimer) || Boolean(recheckTimer) || Boolean(pendingTimer) }),
    resetStats: () => {
      Object.assign(stats, { batches: 0, records: 0, slices: 0, busyMs: 0, lastSliceMs: 0, maxSliceMs: 0, sliceMs: [],
        observerMs: 0, sent: 0, fullScans: 0, timers: 0 });
    },
  });

  ext.runtime.onMessage.addListener((msg, sender) => {
    if (!sender || sender.id !== ext.runtime.id || sender.tab) return false; // only our own worker
    if (!msg || typeof msg !== 'object' || msg.type !== INBOUND) return false;
    configure(msg.eye);
    return false;
  });

  ext.runtime.sendMessage({ type: 'page:rules' }).then((reply) => {
    if (reply && reply.ok) configure(reply.result && reply.result.eye);
  }, () => {
    /* worker asleep or the extension reloaded: it pushes the rules to us when it has them */
  });
})();
