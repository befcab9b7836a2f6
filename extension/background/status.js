/* One status, computed from facts, never from hope: the popup, the toolbar icon and the first-run page all show
 * what computeStatus() says. Pure functions (no browser API, no clock of their own): unit-tested with node.
 *
 * Facts, as the worker gathers them (background.js, facts()):
 *   backend     'up' | 'down' | null (not asked yet): did GET /v1/health answer?
 *   conn        the sync state: starting | unpaired | connecting | connected | down | unauthorized | error
 *   paired      a token is stored;  lastError  the sync's last error text
 *   routing     {wanted, enabled (held by us), blockedBy, error} from Routing.status()
 *   selftest    {outcome: 'ok' | 'untrusted' | 'bypassed' | 'error', at (ms), detail} or null
 *   tlsFailures {host: refused handshakes in the last 10 minutes} from /v1/health
 *   pageEye     {granted: bool, missing: [match patterns]} the content scripts' host access
 *   browser     'chromium' | 'firefox';  now (ms)
 */

export const SELFTEST_HOST = 'selftest.consentwatch.invalid';
// "Recently": the worker repeats the self-test every minute (alarm) and whenever the popup or first-run page asks.
export const SELFTEST_FRESH_MS = 3 * 60_000;

const cmd = (command, then = null) => ({ kind: 'command', command, then });
const button = (id, label) => ({ kind: 'button', id, label });
const text = (words) => ({ kind: 'text', text: words });

/** The self-test result, if it is recent enough to be believed. */
export function freshSelftest(selftest, now) {
  if (!selftest || !Number.isFinite(selftest.at)) return null;
  return now - selftest.at <= SELFTEST_FRESH_MS && selftest.at <= now + 5_000 ? selftest : null;
}

/** Rule hosts whose pages the browser recently refused to open through consentwatch (bad certificate). */
export function refusedHosts(tlsFailures) {
  if (!tlsFailures || typeof tlsFailures !== 'object') return [];
  return Object.entries(tlsFailures)
    .filter(([host, n]) => host !== SELFTEST_HOST && Number.isInteger(n) && n > 0)
    .map(([host, count]) => ({ host, count }))
    .sort((a, b) => b.count - a.count || a.host.localeCompare(b.host));
}

function trustAction(browser) {
  const which = browser === 'firefox' ? 'firefox' : 'chromium';
  return cmd(`consentwatch trust --browser ${which}`, `then restart ${which === 'firefox' ? 'Firefox' : 'the browser'}`);
}

/**
 * The status: {verdict: 'watching' | 'not-watching' | 'checking', reason, title, detail, action, cautions}.
 * reason names the first fact that fails, in the order a person fixes them; action is the ONE step that fixes
 * it (a command to run, a button the page offers, or words). "watching" only with a fresh, passed self-test.
 */
export function computeStatus(f) {
  const not = (reason, title, detail, action) => ({ verdict: 'not-watching', reason, title, detail, action, cautions: [] });
  if (f.backend === 'down' || f.conn === 'down') {
    return not('backend-down', 'consentwatch is not running', `Nothing answers at ${f.apiBase || 'its address'}.`,
      cmd('consentwatch run', 'or “make run” in your clone'));
  }
  if (f.backend === null && (f.conn === 'starting' || !f.conn)) {
    return { verdict: 'checking', reason: 'starting', title: 'Checking…', detail: 'Looking for consentwatch on this computer.', action: null, cautions: [] };
  }
  if (!f.paired || f.conn === 'unpaired') {
    return not('unpaired', 'not paired yet', 'Click “Pair with consentwatch” and confirm: it gets the address and token from consentwatch on this computer (once “consentwatch trust” has run). Or paste the token that “consentwatch token” prints.',
      button('pair', 'Pair with consentwatch'));
  }
  if (f.conn === 'unauthorized') {
    return not('unauthorized', 'the token was not accepted', 'consentwatch is running but did not accept the saved token.',
      button('pair', 'Pair with consentwatch'));
  }
  if (f.conn === 'error') {
    return not('error', 'consentwatch had a problem', f.lastError || 'The local API gave an unexpected answer.', button('retry', 'Try again'));
  }
  const r = f.routing || {};
  const st = freshSelftest(f.selftest, f.now);
  // The self-test is the proof, whoever holds the proxy setting (this switch, or a PAC the user set): a page that
  // reached the proxy and was refused says "certificate", one that came back says "watching".
  if (st && st.outcome === 'untrusted') {
    return not('ca-untrusted', 'certificate not trusted',
      'The browser reached consentwatch but refused its certificate, so no platform page can be read.', trustAction(f.browser));
  }
  if (!(st && st.outcome === 'ok')) {
    if (r.blockedBy) {
      // another extension or a policy holds the proxy setting, or (Firefox) the add-on may not set it yet: the
      // routing module's words say which, and where to change it
      const other = /Another extension/.test(r.blockedBy);
      const policy = /policy or a command-line flag/.test(r.blockedBy);
      const where = f.browser === 'firefox' ? 'about:addons' : 'chrome://extensions';
      return not('routing-blocked', other || policy ? 'the proxy setting is not ours' : 'routing is not allowed yet', r.blockedBy,
        other ? text(`Turn off the other proxy extension (${where}).`)
          : policy ? text('Remove the proxy policy or the --proxy-server flag, or route the platforms with your own PAC.')
            : null);
    }
    if (!r.wanted) {
      return not('routing-off', 'routing is off', 'The platforms’ traffic does not go through consentwatch, so it cannot read it '
        + '(the settings pages you open are still read in the page).',
        button('routing-on', 'Turn routing on'));
    }
    if (!r.enabled) {
      return not('routing-failed', 'routing did not take', r.error || 'The browser did not accept the proxy setting.',
        button('routing-on', 'Try again'));
    }
    if (!st) {
      return { verdict: 'checking', reason: 'selftest-pending', title: 'Checking the route…',
        detail: 'Opening consentwatch’s self-test page through the proxy.', action: null, cautions: [] };
    }
    if (st.outcome === 'bypassed') {
      return not('route-bypassed', 'route bypassed',
        'The browser sent the self-test page direct instead of to consentwatch.', button('reapply', 'Re-apply routing'));
    }
    return not('selftest-error', 'the self-test failed', st.detail || 'The self-test page gave an unexpected answer.',
      button('reapply', 'Re-apply routing'));
  }
  const cautions = [];
  const refused = refusedHosts(f.tlsFailures);
  if (refused.length) {
    const names = refused.slice(0, 3).map((x) => x.host).join(', ');
    cautions.push({ id: 'tls-refused', hosts: refused.map((x) => x.host),
      text: `A browser refused consentwatch’s certificate for ${names}${refused.length > 3 ? ' and others' : ''} in the last 10 minutes: pages it opened there were not read.`,
      action: trustAction(f.browser) });
  }
  if (f.pageEye && f.pageEye.granted === false) {
    cautions.push({ id: 'page-eye', text: 'The extension may not read the platforms’ pages: settings shown only in the page are missed.',
      action: button('grant-pages', 'Allow reading their pages') });
  }
  return { verdict: 'watching', reason: 'ok', title: 'Watching', detail: 'The self-test page came back through consentwatch, over its trusted certificate.',
    action: null, cautions };
}

/**
 * The first-run checklist: [{id, label, done, detail, action}], in the order a person does the steps. An item
 * whose turn has not come (its prerequisites fail) is not done and says what it waits for.
 */
export function checklist(f) {
  const status = computeStatus(f);
  const backend = f.backend === 'up' && f.conn !== 'down';
  const paired = backend && f.paired && !['unpaired', 'unauthorized'].includes(f.conn);
  const r = f.routing || {};
  const st = paired ? freshSelftest(f.selftest, f.now) : null;
  const trusted = Boolean(st) && st.outcome === 'ok';
  const routed = paired && (Boolean(r.enabled) || trusted || (Boolean(st) && st.outcome === 'untrusted'));
  const waiting = (what) => ({ kind: 'wait', text: `Waits for: ${what}.` });
  const items = [
    { id: 'backend', label: 'consentwatch is running', done: backend,
      detail: backend ? `Answering at ${f.apiBase}.` : `Nothing answers at ${f.apiBase || 'its address'} yet.`,
      action: backend ? null : cmd('consentwatch run', 'or “make run” in your clone') },
    { id: 'paired', label: 'The extension is paired', done: paired,
      detail: paired ? 'consentwatch accepted the token.' : f.conn === 'unauthorized' ? 'consentwatch refused the saved token.'
        : f.paired ? 'A token is saved: checked once consentwatch answers.' : 'No token yet.',
      // not paired and nothing at the saved address: consentwatch may run on other ports, which pairing finds out
      action: paired ? null : (backend || !f.paired ? button('pair', 'Pair with consentwatch') : waiting('consentwatch running')) },
    { id: 'route', label: 'The platforms go through consentwatch', done: routed,
      detail: routed ? (r.enabled ? 'Routing is on: only the watched platforms go to the proxy.' : 'The browser’s own proxy setting sends them.')
        : (r.blockedBy || r.error || (!r.wanted ? 'Routing is off.'
          : paired ? 'Routing is on, but the browser did not take it.' : 'Routing is on: checked once the extension is paired and consentwatch answers.')),
      action: routed ? null : (!paired ? waiting('pairing') : (r.blockedBy ? status.action : button('routing-on', 'Turn routing on'))) },
    { id: 'certificate', label: 'The browser trusts consentwatch’s certificate', done: trusted,
      detail: trusted ? 'The self-test page loaded through the proxy.'
        : (!routed ? 'Checked once the route is on.' : (!st ? 'Checking…' : status.detail)),
      action: trusted ? null : (!routed ? waiting('the route') : (st ? status.action : null)) },
    { id: 'page-eye', label: 'The extension may read the platforms’ pages', done: Boolean(f.pageEye && f.pageEye.granted),
      detail: f.pageEye && f.pageEye.granted ? 'Settings shown only in the page are read there.' : 'The browser has not given the extension access to the platforms’ pages.',
      action: f.pageEye && f.pageEye.granted ? null : button('grant-pages', 'Allow reading their pages') },
  ];
  return { items, status, done: items.every((i) => i.done) };
}

/** The toolbar icon: the warnings count on amber; when not watching, a grey icon and "off" (the count wins). */
export function iconView(status, warnings) {
  const n = warnings;
  const off = status.verdict === 'not-watching';
  let title = 'consentwatch';
  if (off) title += `: not watching — ${status.title}`;
  else if (status.verdict === 'checking') title += `: ${status.title.replace(/…$/, '')}…`;
  else title += ': watching';
  if (n === 1) title += ' · 1 AI-training warning';
  else if (n > 1) title += ` · ${n} AI-training warnings`;
  const text = n > 0 && status.reason !== 'unpaired' && status.reason !== 'unauthorized' ? String(n) : (off ? 'off' : '');
  return { text, color: text === 'off' ? '#57534E' : '#B45309', title, grey: off };
}

/** The mark on a tab whose rule-host page loaded while consentwatch was not watching (null: no mark). */
export function tabMark(status) {
  if (status.verdict === 'watching') return null;
  const why = status.verdict === 'checking' ? 'the route was not proven yet' : status.title;
  return { text: '!', color: '#B91C1C', title: `consentwatch did not watch this page: ${why}. Reload it once consentwatch is watching.` };
}

/** Per platform, which eyes can see it (the rules' seen_via) and whether each eye works now. */
export function platformEyes(rules, status, pageEyeGranted) {
  const byPlatform = new Map();
  for (const r of rules || []) {
    if (!r || !r.platform) continue;
    const p = byPlatform.get(r.platform) || { platform: r.platform, name: r.platformName || r.platform, eyes: new Set() };
    for (const eye of r.seenVia || []) p.eyes.add(eye === 'markup' ? 'network' : eye); // both are read by the proxy
    byPlatform.set(r.platform, p);
  }
  const proxyWorks = status.verdict === 'watching';
  return [...byPlatform.values()].sort((a, b) => a.name.localeCompare(b.name)).map((p) => ({
    platform: p.platform,
    name: p.name,
    eyes: ['network', 'page'].filter((e) => p.eyes.has(e)).map((eye) => ({
      eye, working: eye === 'network' ? proxyWorks : Boolean(pageEyeGranted),
    })),
  }));
}
