// Unit tests of web/tvm-client.js in Node, through its public API only, with a scripted
// TVM and virtual time (tests/browser/virtual-time.mjs): wall clock and timers move only
// when a test moves them, and sleep moves the wall clock alone, as a sleeping laptop does.
// No network, no real waiting.
//
// Each scenario of issue 25 prints a "count:" diagnostic line. TVM_WEB_DIR=<dir> runs the
// same tests against another copy of web/ (how the before/after counts were taken).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { installVirtualTime, installPage, fakeTvm } from './virtual-time.mjs';

const webDir = process.env.TVM_WEB_DIR ? pathToFileURL(`${process.env.TVM_WEB_DIR}/`) : new URL('../../web/', import.meta.url);
const { createTokenSource } = await import(new URL('tvm-client.js', webDir));
const URL_ = 'https://tvm.example/tokens';

/** A fetch that answers from `script(call)`; records every call's time and headers. */
function scriptedFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { at: Date.now(), headers: init?.headers ?? {}, n: calls.length };
    calls.push(call);
    const { status = 200, body = {}, headers = {} } = script(call);
    call.status = status;
    return new Response(JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

/** A token answer as the function sends it, on a server whose clock reads `serverNowMs`. */
const answer = (token, serverNowMs, lifetime = 3600) => ({
  body: { token, exp: Math.floor(serverNowMs / 1000) + lifetime, expires_in: lifetime },
});

/** Runs `fn(clock, page)` under virtual time (and a page's events when `page` is set). */
function virtual(fn, { page = false } = {}) {
  return async (t) => {
    const clock = installVirtualTime();
    const events = page ? installPage() : null;
    try {
      await fn(clock, events, t);
    } finally {
      events?.uninstall();
      clock.uninstall();
    }
  };
}

const T = { timeout: 20_000 };

test('the Authorization callback is asked on every fetch and its value is sent', T, virtual(async (clock) => {
  let n = 0;
  const { fetch, calls } = scriptedFetch(() => answer(`t${calls.length}`, Date.now(), 100));
  const source = createTokenSource(URL_, { fetch, marginSeconds: 30, authorization: async () => `id-token-${++n}` });
  await clock.advance(71_000);
  source.stop();
  assert.deepEqual(calls.map((c) => c.headers.Authorization), ['id-token-1', 'id-token-2']);
}));

test('without a callback no Authorization header is sent', T, virtual(async (clock) => {
  const { fetch, calls } = scriptedFetch(() => answer('t', Date.now()));
  const source = createTokenSource(URL_, { fetch });
  await clock.settle();
  source.stop();
  assert.equal(calls[0].headers.Authorization, undefined);
}));

test('a 401 is reported to onError and retried with growing back-off, never in a tight loop', T, virtual(async (clock) => {
  const { fetch, calls } = scriptedFetch(() => ({ status: 401, body: { message: 'Sign in to get a token' } }));
  const errors = [];
  const source = createTokenSource(URL_, { fetch, retryMinMs: 500, retryMaxMs: 30_000 });
  source.onError((e) => errors.push(e));
  await clock.advance(120_000);
  source.stop();
  assert.ok(calls.length >= 4 && calls.length <= 12, `${calls.length} fetches in 2 minutes`);
  assert.equal(errors.length, calls.length, 'every failure reported');
  assert.deepEqual(errors[0], { status: 401, message: 'Sign in to get a token' });
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
  assert.ok(gaps[0] >= 250, `first retry after ${gaps[0]} ms`);
  assert.ok(gaps.at(-1) >= 15_000, `back-off grew to ${gaps.at(-1)} ms`);
}));

test('a throwing subscriber stops neither the others nor the refreshes, and current() resolves', T, virtual(async (clock) => {
  const { fetch } = scriptedFetch((call) => answer(`t${call.n}`, Date.now(), 100));
  const reported = [];
  const original = console.error;
  console.error = (e) => reported.push(e);
  try {
    const source = createTokenSource(URL_, { fetch, marginSeconds: 30 });
    const seen = [];
    source.subscribe(() => { throw new Error('subscriber bug'); });
    source.subscribe((t) => seen.push(t.token));
    assert.equal((await source.current()).token, 't0');
    await clock.advance(71_000);
    source.stop();
    assert.deepEqual(seen, ['t0', 't1']);
    assert.equal(reported.length, 2, 'the exception is reported, not swallowed');
  } finally {
    console.error = original;
  }
}));

test('subscribers hear of a token once, not on every fetch that returns it again', T, virtual(async (clock) => {
  const { fetch, calls } = scriptedFetch(() => answer('same', Date.now(), 100));
  const source = createTokenSource(URL_, { fetch, marginSeconds: 30 });
  const seen = [];
  source.subscribe((t) => seen.push(t.token));
  await clock.advance(150_000);
  source.stop();
  assert.ok(calls.length >= 3);
  assert.deepEqual(seen, ['same']);
}));

for (const skewHours of [+1, -1]) {
  test(`a browser clock ${skewHours > 0 ? 'an hour fast' : 'an hour slow'} changes nothing`, T, virtual(async (clock) => {
    // The server's clock is right; the browser's (Date.now) is off by an hour.
    const serverNow = () => Date.now() - skewHours * 3_600_000;
    const { fetch, calls } = scriptedFetch((call) => answer(`t${call.n}`, serverNow(), 3600));
    const source = createTokenSource(URL_, { fetch, marginSeconds: 30 });
    const first = await source.current();
    assert.equal(first.token, 't0', 'current() resolves with the fresh token');
    await clock.advance(3_500_000);
    assert.equal(calls.length, 1, 'no polling: the token has an hour');
    assert.equal((await source.current()).token, 't0');
    await clock.advance(100_000);
    source.stop();
    assert.equal(calls.length, 2, 'refreshed 30 s before the end of its hour');
    assert.equal(calls[1].at - calls[0].at, 3_570_000);
  }));
}

test('Retry-After is honoured, and reported', T, virtual(async (clock) => {
  let first = true;
  const { fetch, calls } = scriptedFetch(() => {
    if (!first) return answer('t', Date.now());
    first = false;
    return { status: 503, body: { message: 'busy' }, headers: { 'retry-after': '1' } };
  });
  const errors = [];
  const source = createTokenSource(URL_, { fetch, onError: (e) => errors.push(e.status) });
  await clock.advance(999);
  assert.equal(calls.length, 1, 'not before Retry-After');
  await clock.advance(600);
  source.stop();
  assert.equal(calls.length, 2, 'within 1.6 s of a Retry-After of 1 s');
  assert.deepEqual(errors, [503]);
}));

// ---- Issue 25, scenario 1: the laptop sleeps past `exp` ----------------------------------

const wakeUps = {
  visibilitychange: (page) => { page.setVisibility('hidden'); page.setVisibility('visible'); },
  online: (page) => page.dispatch('online'),
  focus: (page) => page.dispatch('focus'),
  pageshow: (page) => page.dispatch('pageshow'),
};
for (const [event, wake] of Object.entries(wakeUps)) {
  test(`after 10 min awake and 2 h asleep, ${event} brings a fresh token within 2 s`, T, virtual(async (clock, page, t) => {
    const tvm = fakeTvm({ lifetimeSeconds: 3600 });
    const source = createTokenSource(URL_, { fetch: tvm.fetch });
    const seen = [];
    source.subscribe((tok) => seen.push({ ...tok, at: Date.now() }));
    await clock.advance(10 * 60_000);
    await clock.sleep(2 * 3_600_000);
    assert.equal(seen.length, 1, 'asleep: nothing ran');
    wake(page);
    const took = await clock.until(() => seen.length === 2, 60 * 60_000, 250);
    source.stop();
    t.diagnostic(`count: sleep past exp, ${event}: fresh token ${took === Infinity ? 'not within 1 h' : `after ${took / 1000} s`}, ${tvm.calls.length} requests`);
    assert.ok(took <= 2000, `fresh token ${took} ms after ${event}`);
    assert.ok(seen[1].exp * 1000 > Date.now() + 3_000_000, 'the new token has its hour');
  }, { page: true }));
}

test('after sleeping past exp, current() fetches and resolves with a fresh token within 2 s', T, virtual(async (clock, _page, t) => {
  const tvm = fakeTvm({ lifetimeSeconds: 3600 });
  const source = createTokenSource(URL_, { fetch: tvm.fetch });
  const first = await source.current();
  await clock.advance(10 * 60_000);
  await clock.sleep(2 * 3_600_000);
  let got = null;
  source.current().then((tok) => { got = tok; });
  const took = await clock.until(() => got !== null, 60 * 60_000, 250);
  source.stop();
  t.diagnostic(`count: sleep past exp, current(): ${took === Infinity ? 'no token within 1 h' : `resolved after ${took / 1000} s`} (${got?.token === first.token ? 'the dead token' : 'a fresh token'}), ${tvm.calls.length} requests`);
  assert.ok(took <= 2000, `current() took ${took} ms`);
  assert.notEqual(got.token, first.token, 'not the dead token');
}, { page: true }));

test('a hidden page and a page still inside its token fetch nothing on page events', T, virtual(async (clock, page) => {
  const tvm = fakeTvm({ lifetimeSeconds: 3600 });
  const source = createTokenSource(URL_, { fetch: tvm.fetch });
  await clock.advance(10 * 60_000);
  for (const wake of Object.values(wakeUps)) wake(page);
  await clock.advance(1000);
  assert.equal(tvm.calls.length, 1, 'a token with 50 min left is not fetched again');
  await clock.sleep(2 * 3_600_000);
  page.setVisibility('hidden');
  await clock.advance(1000);
  assert.equal(tvm.calls.length, 1, 'hidden: not yet');
  source.stop();
  page.setVisibility('visible');
  page.dispatch('focus');
  await clock.advance(1000);
  assert.equal(tvm.calls.length, 1, 'stopped: page events fetch nothing');
}, { page: true }));

test('online after network errors fetches at once, not at the end of the back-off', T, virtual(async (clock, page) => {
  let offline = true;
  const calls = [];
  const tvm = fakeTvm();
  const fetch = async (...args) => {
    calls.push(Date.now());
    if (offline) throw new TypeError('Failed to fetch');
    return tvm.fetch(...args);
  };
  const source = createTokenSource(URL_, { fetch });
  await clock.advance(60_000); // back-off grows towards 30 s
  const before = calls.length;
  offline = false;
  page.dispatch('online');
  const took = await clock.until(() => tvm.calls.length === 1, 30_000, 50);
  source.stop();
  assert.ok(took <= 100, `fetched ${took} ms after online (${before} failed fetches before)`);
}, { page: true }));

// ---- Scenario 2: a 503 storm ---------------------------------------------------------------

test('a 503 storm with Retry-After: 1 costs at most 20 requests in 120 s, never sooner than asked', T, virtual(async (clock, _page, t) => {
  const { fetch, calls } = scriptedFetch(() => ({ status: 503, body: { message: 'busy' }, headers: { 'retry-after': '1' } }));
  const source = createTokenSource(URL_, { fetch });
  await clock.advance(120_000);
  source.stop();
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
  t.diagnostic(`count: 503 storm: ${calls.length} requests in 120 s (gaps ${gaps.map((g) => (g / 1000).toFixed(1)).join(', ')} s)`);
  assert.ok(calls.length <= 20, `${calls.length} requests`);
  assert.ok(gaps.every((g) => g >= 1000), 'never before Retry-After');
  assert.ok(gaps.at(-1) >= 15_000, `the back-off grew past Retry-After: ${gaps.at(-1)} ms`);
}));

test('a success resets the back-off: the next 503 waits about Retry-After again', T, virtual(async (clock) => {
  let storm = true;
  const tvm = fakeTvm({ lifetimeSeconds: 200 });
  const fetch = async (...args) => {
    if (storm) return new Response('{}', { status: 503, headers: { 'retry-after': '1' } });
    return tvm.fetch(...args);
  };
  const times = [];
  const source = createTokenSource(URL_, { fetch: async (...a) => { times.push(Date.now()); return fetch(...a); } });
  await clock.advance(120_000); // back-off at its cap
  storm = false;
  await clock.until(() => tvm.calls.length === 1, 60_000);
  storm = true; // the refresh, 200 - 30 s later, meets a 503
  const n = times.length;
  await clock.until(() => times.length === n + 2, 300_000);
  source.stop();
  const gap = times[n + 1] - times[n];
  assert.ok(gap >= 1000 && gap <= 1200, `first retry after a success waited ${gap} ms`);
}));

// ---- Scenario 3: a margin at or above the server's 60 s ------------------------------------

test('the client margin agrees with the server refresh margin in src/token.rs', T, async () => {
  const mod = await import(new URL('tvm-client.js', webDir));
  const rust = await readFile(new URL('../../src/token.rs', import.meta.url), 'utf8');
  const m = rust.match(/pub const REFRESH_MARGIN: Duration = Duration::from_secs\((\d+)\);/);
  assert.ok(m, 'REFRESH_MARGIN in src/token.rs');
  assert.equal(mod.SERVER_REFRESH_MARGIN_SECONDS, Number(m[1]));
});

test('a 90 s margin against a shared 200 s token costs at most one fetch per unchanged token', T, virtual(async (clock, _page, t) => {
  const tvm = fakeTvm({ lifetimeSeconds: 3600, firstLeftSeconds: 200 });
  const warned = [];
  const original = console.warn;
  console.warn = (m) => warned.push(m);
  let source;
  try {
    source = createTokenSource(URL_, { fetch: tvm.fetch, marginSeconds: 90 });
  } finally {
    console.warn = original;
  }
  const held = [];
  source.subscribe((tok) => held.push(tok.token));
  await clock.advance(2 * 3_600_000);
  source.stop();
  const perToken = {};
  for (const c of tvm.calls) perToken[c.token] = (perToken[c.token] ?? 0) + 1;
  const repeats = Math.max(...Object.values(perToken)) - 1;
  t.diagnostic(`count: 90 s margin, 200 s shared token: ${perToken["token-1"]} request(s) answered with the first token, ${tvm.calls.length} in 2 h for ${held.length} tokens`);
  assert.ok(repeats <= 1, `fetches per token: ${JSON.stringify(perToken)}`);
  assert.equal(source.marginSeconds, 59, 'clamped below the server margin');
  assert.match(warned.join('\n'), /marginSeconds 90 is not below the server's 60 s/);
}));

test('against a server that keeps tokens longer than the margin, an unchanged token is fetched at most once more', T, virtual(async (clock) => {
  // A TVM replacing tokens only in their last 20 s, a client refreshing 50 s before the end.
  const tvm = fakeTvm({ lifetimeSeconds: 300, refreshMarginSeconds: 20 });
  const source = createTokenSource(URL_, { fetch: tvm.fetch, marginSeconds: 50 });
  await clock.advance(3_600_000);
  source.stop();
  const perToken = {};
  for (const c of tvm.calls) perToken[c.token] = (perToken[c.token] ?? 0) + 1;
  assert.ok(Object.values(perToken).every((n) => n <= 2), JSON.stringify(perToken));
  assert.ok(tvm.minted() >= 11, `kept refreshing: ${tvm.minted()} tokens in an hour of 300 s tokens`);
}));

test('a margin that is not a number of seconds is refused with a clear error', T, () => {
  for (const bad of [-1, Number.NaN, '30']) {
    assert.throws(() => createTokenSource(URL_, { fetch: async () => new Response('{}'), marginSeconds: bad }), /marginSeconds must be a number of seconds from 0 to 59/);
  }
});

// ---- Scenario 4: current() near expiry -----------------------------------------------------

test('current() never resolves with a token inside the margin; it waits for a fresh one', T, virtual(async (clock, _page, t) => {
  let failing = false;
  const tvm = fakeTvm({ lifetimeSeconds: 100 });
  const fetch = async (...args) => (failing ? new Response('{"message":"Something went wrong"}', { status: 500 }) : tvm.fetch(...args));
  const source = createTokenSource(URL_, { fetch, marginSeconds: 30 });
  const first = await source.current();
  failing = true; // the refresh at 70 s and its retries fail
  await clock.advance(95_000 - 1); // 5 s left
  let got = null;
  const asked = Date.now();
  source.current().then((tok) => { got = { ...tok, at: Date.now() }; });
  await clock.advance(10_000);
  const resolvedAtOnce = got !== null;
  t.diagnostic(`count: current() with 5 s left and refreshes failing: ${resolvedAtOnce ? `resolved at once with ${got.token === first.token ? 'the dying token' : 'another token'}` : 'waits for a fresh token'}`);
  assert.equal(got, null, 'not the dying token');
  failing = false;
  await clock.until(() => got !== null, 60_000);
  source.stop();
  assert.notEqual(got.token, first.token);
  assert.ok(got.exp * 1000 - got.at > 30_000, 'the token handed out has more than the margin left');
  assert.ok(got.at - asked < 60_000);
}));

test('stop() rejects a pending current(); current() after stop() rejects', T, virtual(async (clock) => {
  const { fetch } = scriptedFetch(() => ({ status: 503, headers: { 'retry-after': '5' } }));
  const source = createTokenSource(URL_, { fetch });
  const pending = source.current();
  await clock.advance(1000);
  source.stop();
  await assert.rejects(pending, /stopped/);
  await assert.rejects(source.current(), /stopped/);
}));

// ---- rejected(): Momento refused the token ---------------------------------------------------

test('rejected(token) fetches a new token at once; the same token back is reported, not polled for', T, virtual(async (clock) => {
  const tvm = fakeTvm({ lifetimeSeconds: 3600 });
  const source = createTokenSource(URL_, { fetch: tvm.fetch });
  const errors = [];
  source.onError((e) => errors.push(e.message));
  const first = await source.current();
  await clock.advance(60_000);
  source.rejected(first.token);
  await clock.advance(100);
  assert.equal(tvm.calls.length, 2, 'fetched at once');
  assert.equal(tvm.calls[1].token, first.token, 'the server still holds it (its cache)');
  assert.deepEqual(errors, ['the TVM answered with the token Momento refused']);
  let got = null;
  source.current().then((tok) => { got = tok; });
  await clock.advance(30 * 60_000);
  assert.equal(tvm.calls.length, 2, 'no polling while the server keeps it');
  assert.equal(got, null, 'the refused token is not handed out');
  await clock.advance(40 * 60_000);
  source.stop();
  assert.ok(got && got.token !== first.token, 'the replacement, once the server mints it');
  source.rejected('some-older-token'); // after stop: nothing
}));
