// Virtual time for the Node tests of web/: two clocks, as a real machine has them.
// - Date.now() is the wall clock.
// - setTimeout runs on a monotonic clock that stands still while the machine sleeps
//   (and while a browser freezes a background tab), so a timer set for "in 49 min"
//   still has 49 min to go after two hours of sleep.
// advance(ms) is awake time: both clocks move and due timers run in order, letting the
// client's awaits settle after each. sleep(ms) moves the wall clock only. No real waiting.

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

export function installVirtualTime(startMs = Date.parse('2026-11-30T12:00:00Z')) {
  const real = { now: Date.now, setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  let wall = startMs;
  let monotonic = 0;
  let nextId = 1;
  const timers = new Map();
  Date.now = () => wall;
  globalThis.setTimeout = (fn, ms = 0, ...args) => {
    const id = nextId++;
    timers.set(id, { at: monotonic + Math.max(0, Number(ms) || 0), fn, args });
    return id;
  };
  globalThis.clearTimeout = (id) => { timers.delete(id); };

  const nextDue = (limit) => {
    let found = null;
    for (const [id, t] of timers) {
      if (t.at <= limit && (!found || t.at < found[1].at)) found = [id, t];
    }
    return found;
  };

  return {
    settle,
    /** Awake time: runs every timer due within `ms`, in order, settling after each. */
    async advance(ms) {
      const end = monotonic + ms;
      await settle();
      for (let due = nextDue(end); due; due = nextDue(end)) {
        const [id, t] = due;
        wall += t.at - monotonic;
        monotonic = t.at;
        timers.delete(id);
        t.fn(...t.args);
        await settle();
      }
      wall += end - monotonic;
      monotonic = end;
      await settle();
    },
    /** Advances in awake time until `predicate()` holds or `maxMs` pass; returns the ms it took. */
    async until(predicate, maxMs, stepMs = 100) {
      let waited = 0;
      await settle();
      while (!predicate() && waited < maxMs) {
        await this.advance(stepMs);
        waited += stepMs;
      }
      return predicate() ? waited : Infinity;
    },
    /** System sleep: the wall clock runs on, timers do not. */
    async sleep(ms) {
      wall += ms;
      await settle();
    },
    pendingTimers: () => timers.size,
    uninstall() {
      Date.now = real.now;
      globalThis.setTimeout = real.setTimeout;
      globalThis.clearTimeout = real.clearTimeout;
    },
  };
}

/** A page's event targets in Node: window events on globalThis, and a document with visibility. */
export function installPage() {
  const win = new EventTarget();
  const doc = new EventTarget();
  doc.visibilityState = 'visible';
  globalThis.addEventListener = win.addEventListener.bind(win);
  globalThis.removeEventListener = win.removeEventListener.bind(win);
  globalThis.document = doc;
  return {
    dispatch(type) {
      (type === 'visibilitychange' || type === 'resume' ? doc : win).dispatchEvent(new Event(type));
    },
    setVisibility(state) {
      doc.visibilityState = state;
      doc.dispatchEvent(new Event('visibilitychange'));
    },
    uninstall() {
      delete globalThis.addEventListener;
      delete globalThis.removeEventListener;
      delete globalThis.document;
    },
  };
}

/**
 * A TVM as the function behaves: one token per caller, reused until its last
 * `refreshMarginSeconds` (60, as src/token.rs), then replaced by a new one living
 * `lifetimeSeconds`. `fault(call)` may answer instead ({status, body, headers}).
 */
export function fakeTvm({ lifetimeSeconds = 3600, refreshMarginSeconds = 60, firstLeftSeconds, fault } = {}) {
  const calls = [];
  let minted = 0;
  let current = null; // {token, expMs}
  const mint = (leftSeconds) => ({ token: `token-${++minted}`, expMs: Date.now() + leftSeconds * 1000 });
  const fetch = async (url, init) => {
    const call = { at: Date.now(), headers: init?.headers ?? {}, n: calls.length };
    calls.push(call);
    const faulted = fault?.(call);
    if (faulted) {
      call.status = faulted.status;
      return new Response(JSON.stringify(faulted.body ?? {}), { status: faulted.status, headers: faulted.headers ?? {} });
    }
    if (!current) current = mint(firstLeftSeconds ?? lifetimeSeconds);
    else if (current.expMs - Date.now() <= refreshMarginSeconds * 1000) current = mint(lifetimeSeconds);
    const expiresIn = Math.floor((current.expMs - Date.now()) / 1000);
    call.status = 200;
    call.token = current.token;
    return new Response(JSON.stringify({ token: current.token, exp: Math.floor(current.expMs / 1000), expires_in: expiresIn }), { status: 200 });
  };
  return { fetch, calls, minted: () => minted };
}
