/* consentwatch: helpers shared by every part of the extension: the worker's modules (imported for its side
 * effect), the popup and options pages (<script>), and the content scripts (listed before them in the manifest).
 * A plain script, not a module, because content scripts cannot be modules. Exposes one frozen global, CW. */
'use strict';

(function (root) {
  const DEFAULT_API_BASE = 'http://127.0.0.1:8765';
  // consentwatch listens on 127.0.0.1 only; "localhost" resolves there too. [::1] never reaches it.
  const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost']);

  // Messages the worker sends to the content scripts (the worker's own handler tables are the allow-list of
  // what it accepts: background/messages.js). Each content script accepts only its own type.
  const TO_PAGE = Object.freeze({ warnings: 'page:warnings', rules: 'page:rules' });

  // The page eye's limits, shared by the content script (what it sends) and the worker (what it relays).
  const EYE = Object.freeze({
    MAX_REGION: 48 * 1024, // characters of markup per region (the API takes up to 64 KiB of UTF-8)
    REASONS: Object.freeze(['setting', 'notice']),
  });

  const EYES = Object.freeze({ network: 'the proxy', page: 'the page' });

  const KINDS = Object.freeze({
    toggle_on: 'On by default',
    toggle_reenabled: 'Switched back on',
    policy_update: 'Policy change',
    policy_changed: 'Policy text changed', // title and summary are the backend's words, shown as they are
  });

  /** Accepts only http://127.0.0.1|localhost|[::1][:port]; returns {ok, value} or {ok:false, error}. */
  function normalizeApiBase(input) {
    const raw = String(input ?? '').trim() || DEFAULT_API_BASE;
    let url;
    try {
      url = new URL(raw.includes('://') ? raw : `http://${raw}`);
    } catch {
      return { ok: false, error: 'That is not an address. Try http://127.0.0.1:8765' };
    }
    if (url.protocol !== 'http:') {
      return { ok: false, error: 'Use http:// — consentwatch listens on this computer only.' };
    }
    if (url.hostname === '[::1]') {
      return { ok: false, error: 'consentwatch listens on 127.0.0.1, not [::1]. Try http://127.0.0.1:8765' };
    }
    if (!LOOPBACK_HOSTS.has(url.hostname)) {
      return { ok: false, error: 'Only addresses on this computer (127.0.0.1 or localhost) are allowed.' };
    }
    if (url.username || url.password) {
      return { ok: false, error: 'Give just the address and port, like http://127.0.0.1:8765' };
    }
    return { ok: true, value: `http://${url.host}` }; // any path ("/", "/v1") is dropped: the API lives at the root
  }

  function normalizeToken(input) {
    const t = String(input ?? '').trim();
    if (!t) return { ok: true, value: '' };
    if (t.length > 512 || /\s/.test(t)) return { ok: false, error: 'A token is one word with no spaces.' };
    return { ok: true, value: t };
  }

  /** Host matching with rule wildcards: "*.example.com" covers example.com and its subdomains. */
  function hostMatches(hostname, pattern) {
    const h = String(hostname || '').toLowerCase();
    const p = String(pattern || '').toLowerCase();
    if (!h || !p) return false;
    if (p.startsWith('*.')) {
      const base = p.slice(2);
      return h === base || h.endsWith(`.${base}`);
    }
    return h === p;
  }

  /** scheme://host/path of an http(s) URL: the query string and fragment can carry tokens. Null otherwise. */
  function cleanUrl(value, base) {
    try {
      const u = new URL(String(value), base);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
      return `${u.protocol}//${u.host}${u.pathname}`;
    } catch {
      return null;
    }
  }

  // Typographic characters platforms use in labels, mapped to what rule authors type (as text.py's norm()).
  const TRANSLATE = new Map([['\u2019', "'"], ['\u2018', "'"], ['\u201c', '"'], ['\u201d', '"'], ['\u00a0', ' '],
    ['\u2013', '-'], ['\u2014', '-'], ['\u2010', '-'], ['\u2011', '-'], ['\u200b', ''], ['\u00ad', '']]);
  const TRANSLATE_RX = /[\u2019\u2018\u201c\u201d\u00a0\u2013\u2014\u2010\u2011\u200b\u00ad]/g;
  const tr = (s) => s.replace(TRANSLATE_RX, (c) => TRANSLATE.get(c));

  /** Lower-case, quotes and dashes made plain, whitespace collapsed: the same as the detectors' norm(). */
  function norm(text) {
    return tr(tr(String(text ?? '')).normalize('NFKC')).replace(/\s+/g, ' ').trim().toLowerCase();
  }

  /** A rule's path glob as a RegExp: '*' within a segment, '**' across, prefix match (as rules/model.py). */
  function globToRegExp(glob) {
    const src = String(glob).split(/(\*\*|\*)/).map((part) => {
      if (part === '**') return '.*';
      if (part === '*') return '[^/]*';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }).join('');
    return new RegExp(`^(?:${src})`);
  }

  /** The https URL as a string, or null for anything else (javascript:, data:, http:, garbage). */
  function safeHttpsUrl(value) {
    try {
      const u = new URL(String(value));
      return u.protocol === 'https:' ? u.href : null;
    } catch {
      return null;
    }
  }

  const str = (v, max = 2000) => (typeof v === 'string' ? v.slice(0, max) : null);
  const strList = (v, maxItems = 20) => (Array.isArray(v) ? v.filter((s) => typeof s === 'string').slice(0, maxItems).map((s) => s.slice(0, 300)) : []);

  /** Keeps only the fields we know, with the types we expect. Returns null for anything unusable. */
  function sanitizeWarning(w) {
    if (!w || typeof w !== 'object') return null;
    if (typeof w.id !== 'string' || !/^[A-Za-z0-9._:-]{1,160}$/.test(w.id)) return null;
    const remedy = w.remedy && typeof w.remedy === 'object' ? w.remedy : {};
    const platform = str(w.platform, 80) || 'unknown';
    return {
      id: w.id,
      kind: Object.hasOwn(KINDS, w.kind) ? w.kind : 'toggle_on',
      status: ['active', 'resolved', 'dismissed'].includes(w.status) ? w.status : 'active',
      platform,
      platform_name: str(w.platform_name, 80) || platform,
      rule_id: str(w.rule_id, 160),
      title: str(w.title, 300) || 'A platform may be training AI on your data',
      summary: str(w.summary, 2000),
      setting: str(w.setting, 300),
      state: w.state === 'on' || w.state === 'off' ? w.state : null,
      url: safeHttpsUrl(w.url),
      effective_date: str(w.effective_date, 40),
      first_seen: str(w.first_seen, 40),
      last_seen: str(w.last_seen, 40),
      region_affected: typeof w.region_affected === 'boolean' ? w.region_affected : null,
      hosts: strList(w.hosts, 50),
      seen_by: strList(w.seen_by, 4).filter((e) => Object.hasOwn(EYES, e)),
      remedy: {
        settings_url: safeHttpsUrl(remedy.settings_url),
        steps: strList(remedy.steps),
        note: str(remedy.note, 1000),
      },
    };
  }

  function parseDate(value) {
    if (!value) return null;
    const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T12:00:00` : value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function formatDate(value) {
    const d = parseDate(value);
    return d ? new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }).format(d) : null;
  }

  /** "the page and the proxy": which eyes saw a platform's warnings (popup, per platform). */
  function eyesText(warnings) {
    const eyes = new Set(warnings.flatMap((w) => w.seen_by || []));
    const names = Object.keys(EYES).filter((e) => eyes.has(e)).map((e) => EYES[e]);
    return names.length ? `Seen by ${names.join(' and ')}` : null;
  }

  /** "Today (Nov 23, 2026)", "Yesterday (…)", "3 days ago (Nov 20, 2026)". */
  function formatSince(value, now = new Date()) {
    const d = parseDate(value);
    if (!d) return null;
    const days = Math.floor((now - d) / 86400000);
    if (days <= 0) return `Today (${formatDate(value)})`;
    if (days === 1) return `Yesterday (${formatDate(value)})`;
    return `${days} days ago (${formatDate(value)})`;
  }

  function regionText(affected) {
    if (affected === true) return 'Applies where you live';
    if (affected === false) return 'Not in force where you live (yet)';
    return 'Not checked (start consentwatch with --region)';
  }

  /** Step labels as shown: first letter upper-case ("switch off" -> "Switch off"). */
  function stepLabel(s) {
    const t = String(s).trim();
    return t ? t[0].toUpperCase() + t.slice(1) : t;
  }

  function effectiveText(w, now = new Date()) {
    if (w.kind !== 'policy_update' || !w.effective_date) return null;
    const d = parseDate(w.effective_date);
    if (!d) return null;
    return d > now ? `Takes effect ${formatDate(w.effective_date)}` : `In effect since ${formatDate(w.effective_date)}`;
  }

  /** Groups warnings by platform, platforms ordered by name; returns [{platform, name, warnings}]. */
  function groupByPlatform(warnings) {
    const groups = new Map();
    for (const w of warnings) {
      if (!groups.has(w.platform)) groups.set(w.platform, { platform: w.platform, name: w.platform_name, warnings: [] });
      groups.get(w.platform).warnings.push(w);
    }
    return [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  root.CW = Object.freeze({
    DEFAULT_API_BASE,
    TO_PAGE,
    EYE,
    EYES,
    KINDS,
    normalizeApiBase,
    normalizeToken,
    hostMatches,
    cleanUrl,
    norm,
    globToRegExp,
    safeHttpsUrl,
    sanitizeWarning,
    eyesText,
    formatDate,
    formatSince,
    regionText,
    stepLabel,
    effectiveText,
    groupByPlatform,
  });
})(globalThis);
