/* One WebSocket to /v1/ws: a ping every 20 s, a dead socket noticed after 50 s of silence. Reconnecting is
 * the caller's (sync.js): onClose fires once per socket that closed by itself, never for one we closed. */

export const HEARTBEAT_MS = 20_000; // we ping this often; the server pings every ~20 s too
export const STALE_MS = 50_000; // nothing heard for this long: the socket is dead

export class LiveSocket {
  /** ticketUrl(apiBase, token): the socket's http(s) URL with a one-time ticket (api.js). */
  constructor({ WebSocketImpl = globalThis.WebSocket, ticketUrl, onOpen = () => {}, onMessage = () => {},
    onClose = () => {}, now = () => Date.now(), heartbeatMs = HEARTBEAT_MS, staleMs = STALE_MS } = {}) {
    Object.assign(this, { WebSocketImpl, ticketUrl, onOpen, onMessage, onClose, now, heartbeatMs, staleMs });
    this.ws = null;
    this.key = null; // apiBase + token the socket was opened with
    this.gen = 0;
    this.lastHeard = 0;
    this.heartbeat = null;
  }

  isOpenFor(apiBase, token) {
    return Boolean(this.ws) && this.key === `${apiBase} ${token}` && this.ws.readyState === this.WebSocketImpl.OPEN;
  }

  close(reason = 'settings changed') {
    this.gen += 1;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.ws) {
      try {
        this.ws.close(1000, reason);
      } catch {
        /* already closed */
      }
    }
    this.ws = null;
    this.key = null;
  }

  /** Opens (or keeps) the socket for these settings. False when it could not even start one. */
  async open(apiBase, token) {
    const key = `${apiBase} ${token}`;
    const W = this.WebSocketImpl;
    if (this.ws && this.key === key && (this.ws.readyState === W.OPEN || this.ws.readyState === W.CONNECTING)) return true;
    this.close();
    const gen = this.gen;
    let sock;
    try {
      // browsers cannot set headers on a WebSocket: a one-time ticket in its URL, never the token
      const url = await this.ticketUrl(apiBase, token);
      if (gen !== this.gen) return true; // closed (or opened anew) meanwhile: that call decides
      sock = new W(url.replace(/^http/, 'ws'));
    } catch {
      return false;
    }
    this.ws = sock;
    this.key = key;
    this.lastHeard = this.now();
    sock.onopen = () => {
      if (gen !== this.gen) return;
      this.lastHeard = this.now();
      this.heartbeat = setInterval(() => this.beat(gen, sock), this.heartbeatMs);
      this.onOpen();
    };
    sock.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.lastHeard = this.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === 'object') this.onMessage(msg);
    };
    sock.onclose = () => {
      if (gen !== this.gen) return;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      this.ws = null;
      this.key = null;
      this.onClose();
    };
    sock.onerror = () => {
      /* onclose follows */
    };
    return true;
  }

  beat(gen, sock) {
    if (gen !== this.gen) return;
    if (this.now() - this.lastHeard > this.staleMs) {
      try {
        sock.close(4000, 'heartbeat timeout');
      } catch {
        /* ignore */
      }
      return;
    }
    try {
      sock.send(JSON.stringify({ type: 'ping' }));
    } catch {
      /* onclose will follow */
    }
  }
}
