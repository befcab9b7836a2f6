/* The only code that talks to the consentwatch API (on 127.0.0.1). */

export const FETCH_TIMEOUT_MS = 4_000;

export class ApiError extends Error {
  constructor(kind, message, status = 0, retryAfter = null) {
    super(message);
    this.kind = kind; // 'down' | 'unauthorized' | 'http'
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from a 429 or 503
  }
}

/** The URL of a route the browser opens itself (`report`: a tab, `ws`: the WebSocket), with a one-time ticket the
 * API hands out for it: the token is sent in a header, never put in a URL (history, logs). */
export async function ticketUrl(apiFetch, apiBase, token, purpose) {
  const body = await apiFetch(apiBase, `/v1/tickets?for=${encodeURIComponent(purpose)}`, { token, method: 'POST' });
  if (!body || typeof body.url !== 'string' || !body.url.startsWith('/')) throw new ApiError('http', 'consentwatch gave no ticket');
  return apiBase + body.url;
}

/** apiFetch(apiBase, path, {token, method, as: 'json'|'text', json: body}) with a timeout; throws ApiError. */
export function makeApiFetch(fetchImpl = (...a) => globalThis.fetch(...a), timeoutMs = FETCH_TIMEOUT_MS) {
  return async function apiFetch(apiBase, path, { token = null, method = 'GET', as = 'json', json } = {}) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    if (json !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetchImpl(apiBase + path, {
        method,
        headers,
        body: json !== undefined ? JSON.stringify(json) : undefined,
        signal: ctl.signal,
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
    } catch {
      throw new ApiError('down', `No answer from consentwatch at ${apiBase}`);
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 401) throw new ApiError('unauthorized', 'consentwatch refused the token', 401);
    if (!res.ok) {
      const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
      throw new ApiError('http', `consentwatch answered ${res.status} for ${path.split('?')[0]}`, res.status,
        Number.isFinite(retry) ? retry : null);
    }
    return as === 'text' ? res.text() : res.json();
  };
}
