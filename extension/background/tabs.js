/* Which tabs show a platform page with our content scripts, so warnings and rule changes reach them live.
 *
 * Kept in memory and mirrored into storage.session (a woken worker still knows its tabs). Every change is one
 * step of a serial queue on the in-memory map: two tabs loading at once both stay tracked (a read-modify-write
 * of the stored map from two handlers at once used to lose one of them). */

import { serial } from './state.js';

export const TABS_KEY = 'cwTabs';

export class TabTracker {
  constructor(session) {
    this.session = session;
    this.queue = serial();
    this.tabs = null; // tab id (string) -> hostname, loaded on first use
  }

  async _loaded() {
    if (this.tabs === null) this.tabs = { ...((await this.session.get(TABS_KEY)) || {}) };
    return this.tabs;
  }

  track(tabId, hostname) {
    return this.queue(async () => {
      const tabs = await this._loaded();
      if (tabs[String(tabId)] === hostname) return;
      tabs[String(tabId)] = hostname;
      await this.session.set({ [TABS_KEY]: { ...tabs } });
    });
  }

  untrack(tabId) {
    return this.queue(async () => {
      const tabs = await this._loaded();
      if (!(String(tabId) in tabs)) return;
      delete tabs[String(tabId)];
      await this.session.set({ [TABS_KEY]: { ...tabs } });
    });
  }

  /** [[tabId (number), hostname], ...] as of now. */
  list() {
    return this.queue(async () => Object.entries(await this._loaded()).map(([id, host]) => [Number(id), host]));
  }
}

/** The warnings that concern a page on `hostname` (their rule names that host). */
export function warningsForHost(warnings, hostname, hostMatches) {
  return warnings.filter((w) => w.hosts.some((h) => hostMatches(hostname, h)));
}

/** Send each tracked tab what concerns it; a tab that does not answer (closed, navigated away) is forgotten. */
export async function pushToTabs(tracker, sendMessage, messageFor) {
  const tabs = await tracker.list();
  await Promise.all(tabs.map(async ([tabId, hostname]) => {
    const msg = messageFor(hostname);
    if (!msg) return;
    try {
      await sendMessage(tabId, msg);
    } catch {
      await tracker.untrack(tabId);
    }
  }));
}
