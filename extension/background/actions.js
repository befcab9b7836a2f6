/* What the popup, the options page and the banner can ask for: dismiss, open a setting, test a connection,
 * the popup's view of the state. Every call to the API goes through apiFetch with the stored token. */

import { ticketUrl } from './api.js';

export class Actions {
  constructor({ state, getSettings, apiFetch, tabs, routing, sanitize, CW, pageScripts = null, describe = null }) {
    Object.assign(this, { state, getSettings, apiFetch, tabs, routing, sanitize, CW, pageScripts, describe });
  }

  async findWarning(id) {
    const state = await this.state.load();
    return state.warnings.find((w) => w.id === id) || null;
  }

  async dismiss(id) {
    if (typeof id !== 'string') throw new Error('bad id');
    const { apiBase, token } = await this.getSettings();
    const body = await this.apiFetch(apiBase, `/v1/warnings/${encodeURIComponent(id)}/dismiss`, { token, method: 'POST' });
    await this.state.update((cur) => ({ warnings: cur.warnings.filter((w) => w.id !== id) }));
    return this.sanitize(body && body.warning);
  }

  async openSettings(id, openerTabId) {
    const w = await this.findWarning(id);
    const url = w && (w.remedy.settings_url || w.url);
    if (!url) throw new Error('No settings page is known for this warning.');
    const props = { url, active: true };
    if (Number.isInteger(openerTabId)) props.openerTabId = openerTabId;
    await this.tabs.create(props);
  }

  async openReport() {
    const { apiBase, token } = await this.getSettings();
    if (!token) throw new Error('Not paired yet');
    // a one-time ticket in the tab's URL, never the token: the URL stays in the browser's history
    await this.tabs.create({ url: await ticketUrl(this.apiFetch, apiBase, token, 'report') });
  }

  async testConnection(apiBaseInput, tokenInput) {
    const base = this.CW.normalizeApiBase(apiBaseInput);
    if (!base.ok) return { ok: false, stage: 'address', message: base.error };
    const tok = this.CW.normalizeToken(tokenInput);
    if (!tok.ok) return { ok: false, stage: 'token', message: tok.error };
    let health;
    try {
      health = await this.apiFetch(base.value, '/v1/health');
    } catch {
      return { ok: false, stage: 'down', message: `consentwatch is not running at ${base.value}. Start it with “consentwatch run”.` };
    }
    if (!tok.value) {
      return { ok: false, stage: 'token', message: `consentwatch ${health.version || ''} is running, but there is no token yet. Run “consentwatch token” and paste what it prints.` };
    }
    try {
      const body = await this.apiFetch(base.value, '/v1/warnings?status=active', { token: tok.value });
      const n = Array.isArray(body.warnings) ? body.warnings.length : 0;
      return {
        ok: true,
        stage: 'ok',
        version: health.version || null,
        rules: health.rules ?? null,
        warnings: n,
        message: `Connected to consentwatch ${health.version || ''}: watching ${health.rules ?? 'its'} rules, ${n} active warning${n === 1 ? '' : 's'}.`,
      };
    } catch (e) {
      if (e.kind === 'unauthorized') return { ok: false, stage: 'token', message: 'consentwatch is running but refused this token. Run “consentwatch token” and paste it again.' };
      return { ok: false, stage: 'error', message: e.message };
    }
  }

  /** The state the popup and the first-run page render; with tabId, also what concerns that tab. */
  async uiState(tabId = null) {
    const [state, routing, settings, pages] = await Promise.all([
      this.state.load(), this.routing.status().catch(() => null), this.getSettings(),
      this.pageScripts ? this.pageScripts().catch(() => null) : null,
    ]);
    const base = { ...state, routing, paired: Boolean(settings.token), apiBase: settings.apiBase, pages };
    const view = this.describe ? await this.describe(base, Number.isInteger(tabId) ? tabId : null).catch((e) => {
      console.warn('consentwatch: status', e);
      return null;
    }) : null;
    return { ...base, ...(view || {}) };
  }
}
