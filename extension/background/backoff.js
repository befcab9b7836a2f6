/* Reconnect delays: exponential with jitter, capped, reset by a success. Pure (the random source is given). */

export class Backoff {
  constructor({ baseMs = 1_000, maxMs = 60_000, maxAttempts = 10, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.maxAttempts = maxAttempts;
    this.random = random;
    this.attempts = 0;
  }

  /** The next delay in ms: base * 2^attempts, capped at maxMs, times a jitter of 0.75..1.25. */
  next() {
    const delay = Math.min(this.maxMs, this.baseMs * 2 ** this.attempts) * (0.75 + this.random() * 0.5);
    this.attempts = Math.min(this.attempts + 1, this.maxAttempts);
    return delay;
  }

  reset() {
    this.attempts = 0;
  }
}
