/* Messages from the extension's own parts. The handler tables below ARE the allow-list: a type that is not a
 * key of its table is dropped unanswered. page:* come from a content script in the top frame of an https page
 * on a host the page eye runs on; ui:* come from the extension's own pages (popup, options). */

export function makeHandlers(d) {
  const page = {
    'page:get': async (msg, ctx) => {
      await d.tabs.track(ctx.tabId, ctx.hostname);
      // the banner asks once per page load: mark the tab if consentwatch was not watching as it loaded (not
      // awaited: the answer may wait for a self-test, the banner should not)
      if (d.pageLoaded) Promise.resolve(d.pageLoaded(ctx)).catch(() => {});
      return { warnings: await d.warningsFor(ctx.hostname) };
    },
    'page:rules': async (msg, ctx) => {
      await d.tabs.track(ctx.tabId, ctx.hostname);
      return { eye: await d.eyeFor(ctx.hostname) };
    },
    'page:observe': async (msg, ctx) => ({ queued: await d.observe(msg, ctx) }),
    'page:dismiss': async (msg, ctx) => {
      if (!(await d.warningsFor(ctx.hostname)).some((w) => w.id === msg.id)) throw new Error('unknown warning');
      await d.actions.dismiss(msg.id);
      return { ok: true };
    },
    'page:open-settings': async (msg, ctx) => {
      if (!(await d.warningsFor(ctx.hostname)).some((w) => w.id === msg.id)) throw new Error('unknown warning');
      await d.actions.openSettings(msg.id, ctx.tabId);
      return { ok: true };
    },
  };
  const ui = {
    'ui:get-state': (msg) => d.actions.uiState(msg.tabId),
    'ui:refresh': async (msg) => {
      await d.refresh('ui');
      return d.actions.uiState(msg.tabId);
    },
    // the first-run page, every second or two: a fresh look (throttled in the worker), then the state
    'ui:check': async (msg) => {
      if (d.check) await d.check();
      return d.actions.uiState(msg.tabId);
    },
    // "Re-apply routing": the PAC set again, then the self-test again
    'ui:reapply': async (msg) => {
      if (d.reapply) await d.reapply();
      return d.actions.uiState(msg.tabId);
    },
    'ui:dismiss': async (msg) => {
      await d.actions.dismiss(msg.id);
      return d.actions.uiState();
    },
    'ui:open-settings': async (msg) => {
      await d.actions.openSettings(msg.id);
      return { ok: true };
    },
    'ui:open-report': async () => {
      await d.actions.openReport();
      return { ok: true };
    },
    'ui:open-options': async () => {
      await d.openOptions();
      return { ok: true };
    },
    'ui:set-routing': async (msg) => ({ routing: await d.routing.set(Boolean(msg.enabled)) }),
    'ui:test-connection': (msg) => d.actions.testConnection(msg.apiBase, msg.token),
  };
  return { page: Object.freeze(page), ui: Object.freeze(ui) };
}

/** {tabId, hostname, url} for a message from our content script in a tab's top frame on an https page (whether
 * its host is one the page eye runs on is asked separately: the answer may need the stored rules). */
export function pageSender(sender, extId) {
  if (!sender || sender.id !== extId || !sender.tab || !Number.isInteger(sender.tab.id)) return null;
  if (sender.frameId !== undefined && sender.frameId !== 0) return null;
  try {
    const u = new URL(sender.url);
    return u.protocol === 'https:' ? { tabId: sender.tab.id, hostname: u.hostname, url: u.href } : null;
  } catch {
    return null;
  }
}

export function isExtensionPage(sender, extId, extOrigin) {
  return Boolean(sender) && sender.id === extId && typeof sender.url === 'string' && sender.url.startsWith(extOrigin);
}

/**
 * The runtime.onMessage listener: finds the handler, checks the sender, answers {ok, result} or {ok: false, error}.
 * Returns true when it may answer (asynchronously), false when the message is dropped at once. A page:* message
 * from a host the page eye does not run on (hostAllowed, sync or async) is dropped too: never answered.
 */
export function makeDispatcher(handlers, { extId, extOrigin, hostAllowed }) {
  return (msg, sender, sendResponse) => {
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return false;
    let work;
    if (Object.hasOwn(handlers.page, msg.type)) {
      const ctx = pageSender(sender, extId);
      if (!ctx) return false;
      Promise.resolve(hostAllowed(ctx.hostname)).then((allowed) => {
        if (allowed !== true) return; // not a host of ours: no answer at all
        Promise.resolve(handlers.page[msg.type](msg, ctx)).then(
          (result) => sendResponse({ ok: true, result }),
          (e) => sendResponse({ ok: false, error: String((e && e.message) || e) }),
        );
      }, () => {});
      return true;
    }
    if (Object.hasOwn(handlers.ui, msg.type)) {
      if (!isExtensionPage(sender, extId, extOrigin)) return false;
      work = handlers.ui[msg.type](msg);
    } else {
      return false; // not on the allow-list: ignored, no answer
    }
    Promise.resolve(work).then(
      (result) => sendResponse({ ok: true, result }),
      (e) => sendResponse({ ok: false, error: String((e && e.message) || e) }),
    );
    return true;
  };
}
