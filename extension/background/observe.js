/* The page eye's relay: regions from the content scripts to POST /v1/observations.
 *
 * Per region (tab, reason, what it names) only the latest matters: while one is on its way, a newer one waits
 * and replaces any older waiting one. A 429 or 503 waits as long as the API asks, then sends the latest. */

export class ObservationRelay {
  constructor({ post, wait = (ms) => new Promise((r) => setTimeout(r, ms)), maxKeys = 200 }) {
    this.post = post; // async (payload) -> result; throws ApiError
    this.wait = wait;
    this.maxKeys = maxKeys;
    this.slots = new Map(); // key -> {busy, next}
    this.sent = 0;
    this.dropped = 0;
  }

  /** Queue `payload` for `key`. Resolves when the key's queue is idle again (for tests); never rejects. */
  submit(key, payload) {
    let slot = this.slots.get(key);
    if (!slot) {
      if (this.slots.size >= this.maxKeys) {
        this.dropped += 1;
        return Promise.resolve();
      }
      slot = { busy: null, next: null };
      this.slots.set(key, slot);
    }
    if (slot.next) this.dropped += 1; // superseded before it was sent
    slot.next = payload;
    if (!slot.busy) slot.busy = this.drain(key, slot);
    return slot.busy;
  }

  async drain(key, slot) {
    while (slot.next) {
      const payload = slot.next;
      slot.next = null;
      try {
        await this.post(payload);
        this.sent += 1;
      } catch (e) {
        if (e && (e.status === 429 || e.status === 503)) {
          if (!slot.next) slot.next = payload; // try again with the latest, once the API is ready
          await this.wait(Math.min(30, Math.max(1, e.retryAfter || 1)) * 1000);
        } else {
          this.dropped += 1; // refused (422: not a rule host any more) or consentwatch is down: nothing to retry
        }
      }
    }
    slot.busy = null;
    this.slots.delete(key);
  }
}

/** A page:observe message from a content script, checked: {key, payload} or null. */
export function checkObservation(msg, pageUrl, { cleanUrl, maxRegion, reasons }) {
  if (!msg || typeof msg.html !== 'string' || !msg.html.trim() || msg.html.length > maxRegion) return null;
  if (!reasons.includes(msg.reason)) return null;
  if (typeof msg.key !== 'string' || msg.key.length > 300) return null;
  let page;
  let claimed;
  try {
    page = new URL(pageUrl);
    claimed = new URL(msg.url);
  } catch {
    return null;
  }
  // the content script knows the path after a single-page app's pushState; the browser vouches for the origin
  if (claimed.protocol !== 'https:' || claimed.origin !== page.origin) return null;
  return { key: `${msg.reason} ${msg.key}`, payload: { url: cleanUrl(claimed.href), html: msg.html, reason: msg.reason } };
}
