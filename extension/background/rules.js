/* The rules in force (GET /v1/rules), as the page eye needs them: per host, the phrases that name a setting's
 * control and the subjects of policy notices. And the content scripts for rule hosts that a newer rule pack
 * added after this extension was built (registered at run time, only where the user granted host access). */

export const RULES_KEY = 'cwRules';
export const DYNAMIC_ID = 'consentwatch-rule-hosts';

/** Rule hosts that serve apps, not pages (api.x.com, public-api.wordpress.com): no content script there. */
export function isApiHost(host) {
  return /^(?:[\w-]*-)?api\./.test(host);
}

/** The compact form kept in storage.session: what the page eye needs and nothing else. */
export function compactRules(body, norm) {
  const out = [];
  for (const r of Array.isArray(body && body.rules) ? body.rules : []) {
    if (!r || typeof r.id !== 'string' || !Array.isArray(r.hosts)) continue;
    const s = r.setting && typeof r.setting === 'object' ? r.setting : null;
    const labels = s ? [...(Array.isArray(s.labels) ? s.labels : []),
      ...(s.name_states && typeof s.name_states === 'object' ? Object.keys(s.name_states) : [])] : [];
    const n = r.notices && typeof r.notices === 'object' ? r.notices : null;
    const eyes = Array.isArray(r.seen_via) ? r.seen_via.map((v) => v && v.eye).filter((e) => ['network', 'markup', 'page'].includes(e)) : [];
    out.push({
      id: r.id,
      platform: typeof r.platform === 'string' ? r.platform.slice(0, 80) : null,
      platformName: typeof r.platform_name === 'string' ? r.platform_name.slice(0, 80) : null,
      seenVia: [...new Set(eyes)], // which eyes can see it (the popup shows them per platform)
      hosts: r.hosts.filter((h) => typeof h === 'string'),
      phrases: [...new Set(labels.filter((x) => typeof x === 'string').map(norm).filter((x) => x.length >= 3))],
      pages: s && Array.isArray(s.pages) ? s.pages.filter((p) => typeof p === 'string') : [],
      about: n && Array.isArray(n.about) ? [...new Set(n.about.filter((x) => typeof x === 'string').map(norm))] : [],
      noticeHosts: n && Array.isArray(n.hosts) ? n.hosts : null,
    });
  }
  return { version: typeof body?.version === 'string' ? body.version : '', rules: out };
}

/** What the page eye on `hostname` looks for, or null when no rule in force names the host. */
export function eyeConfig(compact, hostname, hostMatches) {
  const mine = (compact?.rules || []).filter((r) => r.hosts.some((h) => hostMatches(hostname, h)));
  if (!mine.length) return null;
  return {
    version: compact.version,
    settings: mine.filter((r) => r.phrases.length).map((r) => ({ id: r.id, phrases: r.phrases, pages: r.pages })),
    notices: mine.filter((r) => r.about.length && (r.noticeHosts || r.hosts).some((h) => hostMatches(hostname, h)))
      .map((r) => ({ id: r.id, about: r.about })),
  };
}

/** Every host pattern a content script should run on, for the rules in force. */
export function pageHosts(compact) {
  return [...new Set((compact?.rules || []).flatMap((r) => r.hosts))].filter((h) => !isApiHost(h)).sort();
}

export function matchPattern(host) {
  return `https://${host}/*`; // a "*.substack.com" host gives a valid match pattern too
}

/** Hosts of the rules in force that the manifest's content scripts do not cover. */
export function extraHosts(compact, staticHosts, hostMatches) {
  return pageHosts(compact).filter((h) => !staticHosts.some((p) => p === h || (!h.startsWith('*.') && hostMatches(h, p))));
}

/** Content scripts on the extra hosts the user allowed (optional host permissions): registered, updated, removed. */
export class DynamicScripts {
  constructor({ scripting, permissions, files, staticHosts, hostMatches }) {
    Object.assign(this, { scripting, permissions, files, staticHosts, hostMatches });
    this.hosts = []; // where they run now
  }

  /** The extra hosts, split into those allowed and those still waiting for the user's permission. */
  async split(compact) {
    const extra = extraHosts(compact, this.staticHosts, this.hostMatches);
    const allowed = [];
    const missing = [];
    for (const h of extra) {
      let ok = false;
      try {
        ok = Boolean(this.permissions) && await this.permissions.contains({ origins: [matchPattern(h)] });
      } catch {
        ok = false;
      }
      (ok ? allowed : missing).push(h);
    }
    return { allowed, missing };
  }

  async sync(compact) {
    if (!this.scripting || !this.scripting.registerContentScripts) return { allowed: [], missing: [] };
    const { allowed, missing } = await this.split(compact);
    const existing = await this.scripting.getRegisteredContentScripts({ ids: [DYNAMIC_ID] }).catch(() => []);
    const matches = allowed.map(matchPattern);
    if (!matches.length) {
      if (existing.length) await this.scripting.unregisterContentScripts({ ids: [DYNAMIC_ID] });
    } else {
      const script = { id: DYNAMIC_ID, matches, js: this.files, runAt: 'document_idle', allFrames: false, persistAcrossSessions: true };
      if (existing.length) await this.scripting.updateContentScripts([script]);
      else await this.scripting.registerContentScripts([script]);
    }
    this.hosts = allowed;
    return { allowed, missing };
  }
}
