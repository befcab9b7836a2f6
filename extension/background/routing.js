/* The routing switch: apply the API's PAC script (only the rule hosts go to the proxy) with the browser's proxy
 * API, keep it equal to what the API serves, and give the proxy setting back when switched off. */

import { ApiError } from './api.js';

export const MAX_PAC = 200_000;

/** Is this text a PAC script we would hand the browser? */
export function usablePac(pac) {
  return typeof pac === 'string' && pac.length <= MAX_PAC && /FindProxyForURL/.test(pac);
}

/** Firefox has no inline PAC data: a data: URL carries the same script (UTF-8, base64). */
export function pacDataUrl(pac) {
  const bytes = new TextEncoder().encode(pac);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `data:application/x-ns-proxy-autoconfig;base64,${btoa(bin)}`;
}

/* Firefox applies an add-on's proxy to private windows too, so it lets only add-ons allowed there set it; without
 * that, proxy.settings.set fails with the bare "proxy.settings requires private browsing permission.". */
export const PRIVATE_BROWSING_NEEDED = 'Firefox lets consentwatch route the platforms only if it may run in private '
  + 'windows. To allow it: open about:addons → consentwatch → Run in Private Windows → Allow.';

/** Firefox's refusal, in words that say where to fix it; any other error as it is. */
export function firefoxProxyError(e) {
  return /private browsing permission/i.test(String(e && e.message)) ? new Error(PRIVATE_BROWSING_NEEDED) : e;
}

/** Why the switch cannot work here (someone else holds the proxy setting), or null. */
export function blockedBy(level) {
  if (level === 'controlled_by_other_extensions') return 'Another extension controls your proxy settings.';
  if (level === 'not_controllable') return 'Your browser’s proxy is set by a policy or a command-line flag.';
  return null;
}

export class Routing {
  constructor({ proxy, local, isFirefox, apiFetch, getSettings, privateAllowed = null }) {
    Object.assign(this, { proxy, local, isFirefox, apiFetch, getSettings, privateAllowed });
  }

  /** Firefox only: may this add-on set the proxy (is it allowed in private windows)? Elsewhere always true. */
  async mayRoute() {
    if (!this.isFirefox || !this.privateAllowed) return true;
    try {
      return Boolean(await this.privateAllowed());
    } catch {
      return true; // unknown: let proxy.settings.set say
    }
  }

  async level() {
    if (this.isFirefox) {
      try {
        const got = await this.proxy.settings.get({});
        return { level: got.levelOfControl, value: got.value };
      } catch (e) {
        return { level: 'not_controllable', value: null, error: e.message };
      }
    }
    const got = await this.proxy.settings.get({ incognito: false });
    return { level: got.levelOfControl, value: got.value };
  }

  async setPac(pac) {
    if (this.isFirefox) {
      await this.proxy.settings.set({ value: { proxyType: 'autoConfig', autoConfigUrl: pacDataUrl(pac) } })
        .catch((e) => { throw firefoxProxyError(e); });
    } else {
      await this.proxy.settings.set({ value: { mode: 'pac_script', pacScript: { data: pac, mandatory: false } }, scope: 'regular' });
    }
  }

  async clearPac() {
    if (this.isFirefox) await this.proxy.settings.clear({});
    else await this.proxy.settings.clear({ scope: 'regular' });
  }

  async status() {
    const { routing = {} } = await this.local.get('routing');
    const { level, value } = await this.level();
    const ours = level === 'controlled_by_this_extension';
    const mayRoute = await this.mayRoute();
    const blocked = blockedBy(level) || (mayRoute ? null : PRIVATE_BROWSING_NEEDED);
    // an earlier refusal for want of the private-windows permission is stale once it is given
    const stored = routing.error === PRIVATE_BROWSING_NEEDED && mayRoute ? null : routing.error;
    return {
      enabled: Boolean(routing.enabled) && ours,
      wanted: Boolean(routing.enabled),
      appliedAt: routing.appliedAt || null,
      error: stored || (routing.enabled && !ours ? blocked : null),
      blockedBy: blocked,
      mode: value ? value.mode || value.proxyType || null : null,
    };
  }

  async enable(apiBase, token) {
    if (!(await this.mayRoute())) throw new Error(PRIVATE_BROWSING_NEEDED);
    const pac = await this.apiFetch(apiBase, '/v1/proxy.pac', { token, as: 'text' });
    if (!usablePac(pac)) throw new Error('consentwatch sent an unusable PAC script');
    await this.setPac(pac);
    const { level } = await this.level();
    if (level !== 'controlled_by_this_extension') {
      throw new Error(blockedBy(level) || 'The browser did not accept the proxy setting.');
    }
    await this.local.set({ routing: { enabled: true, pac, appliedAt: new Date().toISOString(), error: null } });
  }

  async set(enabled) {
    if (!enabled) {
      try {
        await this.clearPac();
      } finally {
        await this.local.set({ routing: { enabled: false, pac: null, appliedAt: null, error: null } });
      }
      return this.status();
    }
    const { apiBase, token } = await this.getSettings();
    if (!token) throw new Error('Pair the extension with consentwatch first (Settings).');
    try {
      await this.enable(apiBase, token);
    } catch (e) {
      const message = e instanceof ApiError && e.kind === 'down' ? 'consentwatch is not running, so there is nothing to route to.' : e.message;
      await this.local.set({ routing: { enabled: false, pac: null, appliedAt: null, error: message } });
      try {
        await this.clearPac();
      } catch {
        /* nothing was set */
      }
      throw new Error(message);
    }
    return this.status();
  }

  /** When routing is on, keep the browser's PAC equal to what the API serves (ports or rules may change). With
   * force (consentwatch may have been away) apply it again even when nothing changed: Chromium sends the hosts of
   * a proxy that failed DIRECT for ~5 minutes (when DIRECT works for them), and only a changed proxy setting ends
   * that. The same value again is no change (no event reaches the network stack), and clearing first would open
   * a moment with no routing at all, so the script is set with a different last line. */
  async sync(apiBase, token, { force = false } = {}) {
    const { routing } = await this.local.get('routing');
    if (!routing || !routing.enabled) return false;
    const pac = await this.apiFetch(apiBase, '/v1/proxy.pac', { token, as: 'text' });
    const { level } = await this.level();
    const ours = level === 'controlled_by_this_extension';
    if (pac !== routing.pac || !ours || force) {
      if (!usablePac(pac)) return false;
      await this.setPac(force ? reappliedPac(pac, new Date()) : pac);
      await this.local.set({ routing: { ...routing, pac, appliedAt: new Date().toISOString() } });
      return true;
    }
    return false;
  }
}

/** The same script with a last comment line that says when: a different value for the browser, the same routes. */
export function reappliedPac(pac, when) {
  return `${pac.replace(/\n\/\/ consentwatch: re-applied [^\n]*\n?$/, '')}\n// consentwatch: re-applied ${when.toISOString()}\n`;
}
