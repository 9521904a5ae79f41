// A token source for the token vending machine: fetches `{token, exp}` from
// GET /tokens, hands every new token to its subscribers, and fetches the next
// one `marginSeconds` before the current one expires, so a page left open all
// day keeps receiving updates. Dependency-free; works in browsers and Node 20+.

/**
 * @typedef {{ token: string, exp: number }} VendedToken  `exp` in epoch seconds (the server's clock).
 * @typedef {{ status: number | null, message: string }} TokenError  `status` null: network error.
 * @typedef {{
 *   subscribe: (cb: (t: VendedToken) => void) => () => void,
 *   onError: (cb: (e: TokenError) => void) => () => void,
 *   current: () => Promise<VendedToken>,
 *   stop: () => void,
 * }} TokenSource
 */

/**
 * Starts fetching tokens from `url` at once.
 *
 * @param {string} url  The TVM's `/tokens` URL.
 * @param {object} [options]
 * @param {number} [options.marginSeconds=30]  Refresh this long before the token expires.
 * @param {number} [options.retryMinMs=500]  First back-off after a failed fetch.
 * @param {number} [options.retryMaxMs=30000]  Cap of the (doubling, jittered) back-off.
 * @param {() => (string | null | undefined | Promise<string | null | undefined>)} [options.authorization]
 *   Signed-in callers: returns the user's current Cognito ID token, sent as `Authorization`
 *   on every fetch (called each time, so a refreshed ID token is picked up).
 * @param {(e: TokenError) => void} [options.onError]  Same as `source.onError(cb)`.
 * @param {typeof fetch} [options.fetch]  The fetch to use (default: the global one).
 * @returns {TokenSource}
 */
export function createTokenSource(url, options = {}) {
  const { marginSeconds = 30, retryMinMs = 500, retryMaxMs = 30_000 } = options;
  const fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const subscribers = new Set();
  const errorListeners = new Set(options.onError ? [options.onError] : []);
  let waiting = []; // resolvers of current() calls made while there is no usable token
  let latest = null;
  let usableUntil = 0; // local clock (ms) after which `latest` is not handed out
  let timer = null;
  let failures = 0;
  let stopped = false;

  // Full jitter over a doubling window: a crowd of pages does not retry in step.
  const backOff = () => {
    const window = Math.min(retryMaxMs, retryMinMs * 2 ** failures++);
    return window / 2 + Math.random() * (window / 2);
  };

  // One listener's exception must not stop the others, nor the refreshes.
  const notify = (listeners, value) => {
    for (const cb of listeners) {
      try {
        cb(value);
      } catch (e) {
        // Reported as the page's own uncaught errors are, without unwinding this loop.
        (globalThis.reportError ?? console.error)(e);
      }
    }
  };

  const fail = (status, message) => {
    notify(errorListeners, { status, message });
    return backOff();
  };

  /** One fetch; returns how long to wait before the next one (ms). */
  async function fetchOnce() {
    const headers = {};
    let response;
    try {
      const authorization = options.authorization ? await options.authorization() : null;
      if (authorization) headers.Authorization = authorization;
      response = await fetchFn(url, { cache: 'no-store', headers });
    } catch (e) {
      return fail(null, `network error: ${e?.message ?? e}`);
    }
    const answeredAt = Date.now();
    const body = await response.json().catch(() => null);
    if (response.status === 503 || response.status === 429) {
      // Honour Retry-After, with jitter so a crowd told "1" does not come back in step.
      const seconds = Number(response.headers.get('retry-after'));
      notify(errorListeners, { status: response.status, message: body?.message ?? 'retry later' });
      if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000 * (1 + Math.random() * 0.5);
      return backOff();
    }
    if (!response.ok) return fail(response.status, body?.message ?? `HTTP ${response.status}`);
    if (typeof body?.token !== 'string' || !Number.isFinite(body?.exp)) {
      return fail(response.status, 'the answer is not a token');
    }
    failures = 0;
    // How long the token lives, from the server's own figures where it gives them
    // (`expires_in`), so a browser clock that is off by minutes or hours changes
    // nothing: the refresh is timed from this answer's arrival on the local clock.
    const lifetimeMs = Number.isFinite(body.expires_in)
      ? body.expires_in * 1000
      : body.exp * 1000 - answeredAt;
    usableUntil = answeredAt + lifetimeMs;
    const changed = latest?.token !== body.token;
    latest = { token: body.token, exp: body.exp };
    if (changed) notify(subscribers, latest);
    notify(waiting, latest);
    waiting = [];
    // Never sooner than the first back-off: a token shorter-lived than the margin must not spin.
    return Math.max(retryMinMs, lifetimeMs - marginSeconds * 1000);
  }

  async function refresh() {
    timer = null;
    const wait = await fetchOnce();
    if (!stopped) timer = setTimeout(refresh, wait);
  }

  refresh();
  return {
    /** Called with the first token and every new one after it (not with a repeat). */
    subscribe(cb) {
      subscribers.add(cb);
      if (latest) notify([cb], latest);
      return () => subscribers.delete(cb);
    },
    /** Called with every failed fetch: `{status, message}` (401: sign in again). */
    onError(cb) {
      errorListeners.add(cb);
      return () => errorListeners.delete(cb);
    },
    /** The current token; waits for one while there is none that is still usable. */
    current() {
      if (latest && Date.now() < usableUntil) return Promise.resolve(latest);
      return new Promise((resolve) => waiting.push(resolve));
    },
    /** Ends the timers and drops the listeners; nothing is fetched after this. */
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
      subscribers.clear();
      errorListeners.clear();
    },
  };
}
