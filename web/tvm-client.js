// A token source for the token vending machine: fetches `{token, exp}` from
// GET /tokens, hands every token to its subscribers, and fetches the next one
// `marginSeconds` before the current one expires, so a page left open all day
// keeps receiving updates. Dependency-free; works in browsers and Node 20+.

/**
 * @typedef {{ token: string, exp: number }} VendedToken  `exp` in epoch seconds.
 * @typedef {{
 *   subscribe: (cb: (t: VendedToken) => void) => () => void,
 *   current: () => Promise<VendedToken>,
 *   stop: () => void,
 * }} TokenSource
 */

/**
 * Starts fetching tokens from `url` at once.
 *
 * @param {string} url  The TVM's `/tokens` URL.
 * @param {object} [options]
 * @param {number} [options.marginSeconds=30]  Refresh this long before `exp`.
 * @param {number} [options.retryMinMs=500]  First back-off after a network or server error.
 * @param {number} [options.retryMaxMs=30000]  Cap of the (doubling, jittered) back-off.
 * @param {typeof fetch} [options.fetch]  The fetch to use (default: the global one).
 * @returns {TokenSource}
 */
export function createTokenSource(url, options = {}) {
  const { marginSeconds = 30, retryMinMs = 500, retryMaxMs = 30_000 } = options;
  const fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const subscribers = new Set();
  let waiting = []; // resolvers of current() calls made before the first token
  let latest = null;
  let timer = null;
  let failures = 0;
  let stopped = false;

  // Full jitter over a doubling window: a crowd of pages does not retry in step.
  const backOff = () => {
    const window = Math.min(retryMaxMs, retryMinMs * 2 ** failures++);
    return window / 2 + Math.random() * (window / 2);
  };

  /** One fetch; returns how long to wait before the next one (ms). */
  async function fetchOnce() {
    let response;
    try {
      response = await fetchFn(url, { cache: 'no-store' });
    } catch {
      return backOff(); // network error
    }
    if (response.status === 503 || response.status === 429) {
      const seconds = Number(response.headers.get('retry-after'));
      if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
      return backOff();
    }
    const body = response.ok ? await response.json().catch(() => null) : null;
    if (typeof body?.token !== 'string' || !Number.isFinite(body?.exp)) return backOff();
    failures = 0;
    latest = { token: body.token, exp: body.exp };
    for (const cb of subscribers) cb(latest);
    for (const resolve of waiting) resolve(latest);
    waiting = [];
    // Never sooner than the first back-off: a token shorter-lived than the margin must not spin.
    return Math.max(retryMinMs, body.exp * 1000 - marginSeconds * 1000 - Date.now());
  }

  async function refresh() {
    timer = null;
    const wait = await fetchOnce();
    if (!stopped) timer = setTimeout(refresh, wait);
  }

  refresh();
  return {
    subscribe(cb) {
      subscribers.add(cb);
      if (latest) cb(latest);
      return () => subscribers.delete(cb);
    },
    /** The current token; waits for one while there is none that is unexpired. */
    current() {
      if (latest && latest.exp * 1000 > Date.now()) return Promise.resolve(latest);
      return new Promise((resolve) => waiting.push(resolve));
    },
    /** Ends the timers and drops the subscribers; nothing is fetched after this. */
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
      subscribers.clear();
    },
  };
}
