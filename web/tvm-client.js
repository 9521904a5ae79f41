// A token source for the token vending machine: fetches `{token, exp}` from
// GET /tokens, hands every new token to its subscribers, and fetches the next
// one `marginSeconds` before the current one expires, so a page left open all
// day keeps receiving updates. Dependency-free; works in browsers and Node 20+.
//
// Real life, not a desk that never sleeps: timers pause while a laptop sleeps
// or a background tab is frozen, but the wall clock runs on. So every deadline
// here is a wall-clock time (Date.now), re-checked whenever the page wakes up
// (visibilitychange, online, focus, pageshow, resume) and inside current(),
// not only when a timer fires.

/**
 * The function replaces a cached token only in its last 60 s (src/token.rs, REFRESH_MARGIN;
 * a test checks the two agree). A client margin at or above it would ask for a new token while
 * the server still hands out the old one, so margins are clamped below it.
 */
export const SERVER_REFRESH_MARGIN_SECONDS = 60;
const MAX_MARGIN_SECONDS = SERVER_REFRESH_MARGIN_SECONDS - 1;

/**
 * @typedef {{ token: string, exp: number }} VendedToken  `exp` in epoch seconds (the server's clock).
 * @typedef {{ status: number | null, message: string }} TokenError  `status` null: network error.
 * @typedef {{
 *   subscribe: (cb: (t: VendedToken) => void) => () => void,
 *   onError: (cb: (e: TokenError) => void) => () => void,
 *   current: () => Promise<VendedToken>,
 *   rejected: (token: string) => void,
 *   stop: () => void,
 *   marginSeconds: number,
 * }} TokenSource
 */

/**
 * Starts fetching tokens from `url` at once.
 *
 * @param {string} url  The TVM's `/tokens` URL.
 * @param {object} [options]
 * @param {number} [options.marginSeconds=30]  Refresh this long before the token expires; at most 59
 *   (values of 60 or more are clamped to 59 with a warning: see SERVER_REFRESH_MARGIN_SECONDS).
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
  const { retryMinMs = 500, retryMaxMs = 30_000 } = options;
  const marginSeconds = checkedMargin(options.marginSeconds ?? 30);
  const marginMs = marginSeconds * 1000;
  const fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const subscribers = new Set();
  const errorListeners = new Set(options.onError ? [options.onError] : []);
  let waiting = []; // {resolve, reject} of current() calls made while no token may be handed out
  let latest = null;
  let refreshAt = 0; // wall clock (ms): from here on `latest` is inside the margin, not handed out
  let nextFetchAt = 0; // wall clock (ms): the next fetch is due (a refresh, or the end of a back-off)
  let rejectedToken = null; // a token Momento refused: never handed out again
  let lastFailureWasNetwork = false;
  let inFlight = false;
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

  const reportError = (status, message) => notify(errorListeners, { status, message });

  /** One fetch; returns the wall-clock time (ms) the next one is due. */
  async function fetchOnce() {
    const headers = {};
    let response;
    try {
      const authorization = options.authorization ? await options.authorization() : null;
      if (authorization) headers.Authorization = authorization;
      response = await fetchFn(url, { cache: 'no-store', headers });
    } catch (e) {
      reportError(null, `network error: ${e?.message ?? e}`);
      lastFailureWasNetwork = true;
      return Date.now() + backOff();
    }
    lastFailureWasNetwork = false;
    const answeredAt = Date.now();
    const body = await response.json().catch(() => null);
    if (response.status === 503 || response.status === 429) {
      // The longer of what the server asks and our own growing back-off: a crowd told
      // "Retry-After: 1" over and over must not keep coming back every second.
      reportError(response.status, body?.message ?? 'retry later');
      const asked = retryAfterMs(response.headers.get('retry-after'), answeredAt);
      return answeredAt + Math.max(asked * (1 + Math.random() * 0.2), backOff());
    }
    if (!response.ok) {
      reportError(response.status, body?.message ?? `HTTP ${response.status}`);
      return answeredAt + backOff();
    }
    if (typeof body?.token !== 'string' || !Number.isFinite(body?.exp)) {
      reportError(response.status, 'the answer is not a token');
      return answeredAt + backOff();
    }
    // How long the token lives, from the server's own figures where it gives them
    // (`expires_in`), so a browser clock that is off by minutes or hours changes
    // nothing: the refresh is timed from this answer's arrival on the local clock.
    const lifetimeMs = Number.isFinite(body.expires_in)
      ? body.expires_in * 1000
      : body.exp * 1000 - answeredAt;
    const tokenRefreshAt = answeredAt + lifetimeMs - marginMs;
    if (body.token === rejectedToken) {
      // The server still hands out the token Momento refused: asking again before it is due
      // for replacement would bring the same one back, so wait for that (no polling).
      reportError(response.status, 'the TVM answered with the token Momento refused');
      return Math.max(tokenRefreshAt, answeredAt + backOff());
    }
    failures = 0;
    rejectedToken = null;
    const changed = latest?.token !== body.token;
    latest = { token: body.token, exp: body.exp };
    refreshAt = tokenRefreshAt;
    if (changed) notify(subscribers, latest);
    if (answeredAt >= refreshAt) {
      // Already inside our margin: the server will not replace it until later (a server
      // with a smaller margin than ours). Ask again when it ends, not in a loop.
      return Math.max(answeredAt + lifetimeMs, answeredAt + retryMinMs);
    }
    const resolved = waiting;
    waiting = [];
    notify(resolved.map((w) => w.resolve), latest);
    return Math.max(refreshAt, answeredAt + retryMinMs);
  }

  function arm(at) {
    nextFetchAt = at;
    clearTimeout(timer);
    // The timer is only one way to notice the time has come: it pauses while the machine
    // sleeps, so page events and current() compare nextFetchAt with the wall clock too.
    timer = setTimeout(fetchNow, Math.max(0, at - Date.now()));
  }

  async function fetchNow() {
    if (stopped || inFlight) return;
    clearTimeout(timer);
    timer = null;
    inFlight = true;
    const at = await fetchOnce();
    inFlight = false;
    if (!stopped) arm(at);
  }

  /** Fetches at once if a fetch is due by the wall clock (after sleep, a frozen tab...). */
  function wakeUp() {
    if (!stopped && !inFlight && Date.now() >= nextFetchAt) fetchNow();
  }

  // Page events that follow sleep, a frozen or hidden tab, or a network coming back.
  const onVisible = () => {
    if (globalThis.document?.visibilityState !== 'hidden') wakeUp();
  };
  const onOnline = () => {
    // A fetch that failed for want of a network is retried as soon as there is one again.
    if (lastFailureWasNetwork && !stopped && !inFlight) fetchNow();
    else wakeUp();
  };
  const pageListeners = [
    [globalThis, 'online', onOnline],
    [globalThis, 'focus', wakeUp],
    [globalThis, 'pageshow', wakeUp],
    [globalThis.document, 'visibilitychange', onVisible],
    [globalThis.document, 'resume', wakeUp],
  ].filter(([target]) => typeof target?.addEventListener === 'function');
  for (const [target, type, listener] of pageListeners) target.addEventListener(type, listener);

  fetchNow();
  return {
    /** The margin in use (after clamping). */
    marginSeconds,
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
    /**
     * A token with more than the margin left. Never one inside the margin: until a fresh
     * one arrives this waits (and fetches at once if a fetch is due); a failing TVM makes it
     * wait through the back-off, so bound it with your own timeout if you need to.
     * Rejects if the source is stopped.
     */
    current() {
      if (stopped) return Promise.reject(new Error('token source stopped'));
      if (latest && latest.token !== rejectedToken && Date.now() < refreshAt) return Promise.resolve(latest);
      const promise = new Promise((resolve, reject) => waiting.push({ resolve, reject }));
      wakeUp();
      return promise;
    },
    /**
     * Momento refused `token` (expired, or not accepted): it is not handed out again and a new
     * one is fetched now (unless a back-off after a failure is still running).
     */
    rejected(token) {
      if (stopped || !latest || token !== latest.token) return; // an older token: nothing to do
      rejectedToken = token;
      refreshAt = 0;
      if (failures === 0 || Date.now() >= nextFetchAt) fetchNow();
    },
    /** Ends the timers and drops the listeners; nothing is fetched after this. */
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
      for (const [target, type, listener] of pageListeners) target.removeEventListener(type, listener);
      subscribers.clear();
      errorListeners.clear();
      const pending = waiting;
      waiting = [];
      for (const w of pending) w.reject(new Error('token source stopped'));
    },
  };
}

function checkedMargin(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`marginSeconds must be a number of seconds from 0 to ${MAX_MARGIN_SECONDS}, not ${seconds}`);
  }
  if (seconds > MAX_MARGIN_SECONDS) {
    console.warn(`tvm-client: marginSeconds ${seconds} is not below the server's ${SERVER_REFRESH_MARGIN_SECONDS} s `
      + `refresh margin (it hands out the same token until then); using ${MAX_MARGIN_SECONDS}`);
    return MAX_MARGIN_SECONDS;
  }
  return seconds;
}

/** Retry-After as ms: delta-seconds or an HTTP date; 0 when absent or unreadable. */
function retryAfterMs(header, now) {
  if (header == null || header === '') return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now) : 0;
}
