// Unit tests of web/tvm-client.js in Node, with a scripted fetch and Node's mock
// timers and Date: what the client sends, when it fetches again, and what its
// listeners see. No network, no sleeps: time moves only when a test moves it.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createTokenSource } from '../../web/tvm-client.js';

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** Moves the mocked clock by `ms`, letting the client's awaits run at each step. */
async function advance(ms, step = 100) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(Math.min(step, ms - t));
    await flush();
  }
}

/** A fetch that answers from `script(call)`; records every call's time and headers. */
function scriptedFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { at: Date.now(), headers: init?.headers ?? {}, n: calls.length };
    calls.push(call);
    const { status = 200, body = {}, headers = {} } = script(call);
    return new Response(JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

/** A token answer as the function sends it, on a server whose clock reads `serverNowMs`. */
const answer = (token, serverNowMs, lifetime = 3600) => ({
  body: { token, exp: Math.floor(serverNowMs / 1000) + lifetime, expires_in: lifetime },
});

function withClock(fn) {
  return async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-11-30T12:00:00Z') });
    try {
      await fn();
    } finally {
      mock.timers.reset();
    }
  };
}

test('the Authorization callback is asked on every fetch and its value is sent', { timeout: 10_000 }, withClock(async () => {
  let n = 0;
  const { fetch, calls } = scriptedFetch(() => answer(`t${calls.length}`, Date.now(), 100));
  const source = createTokenSource('https://tvm.example/tokens', {
    fetch, marginSeconds: 30, authorization: async () => `id-token-${++n}`,
  });
  await flush();
  await advance(71_000);
  source.stop();
  assert.deepEqual(calls.map((c) => c.headers.Authorization), ['id-token-1', 'id-token-2']);
}));

test('without a callback no Authorization header is sent', { timeout: 10_000 }, withClock(async () => {
  const { fetch, calls } = scriptedFetch(() => answer('t', Date.now()));
  const source = createTokenSource('https://tvm.example/tokens', { fetch });
  await flush();
  source.stop();
  assert.equal(calls[0].headers.Authorization, undefined);
}));

test('a 401 is reported to onError and retried with growing back-off, never in a tight loop', { timeout: 10_000 }, withClock(async () => {
  const { fetch, calls } = scriptedFetch(() => ({ status: 401, body: { message: 'Sign in to get a token' } }));
  const errors = [];
  const source = createTokenSource('https://tvm.example/tokens', { fetch, retryMinMs: 500, retryMaxMs: 30_000 });
  source.onError((e) => errors.push(e));
  await flush();
  await advance(120_000, 250);
  source.stop();
  assert.ok(calls.length >= 4 && calls.length <= 12, `${calls.length} fetches in 2 minutes`);
  assert.equal(errors.length, calls.length, 'every failure reported');
  assert.deepEqual(errors[0], { status: 401, message: 'Sign in to get a token' });
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
  assert.ok(gaps[0] >= 250, `first retry after ${gaps[0]} ms`);
  assert.ok(gaps.at(-1) >= 15_000, `back-off grew to ${gaps.at(-1)} ms`);
}));

test('a throwing subscriber stops neither the others nor the refreshes, and current() resolves', { timeout: 10_000 }, withClock(async () => {
  const { fetch } = scriptedFetch((call) => answer(`t${call.n}`, Date.now(), 100));
  const reported = [];
  const original = console.error;
  console.error = (e) => reported.push(e);
  try {
    const source = createTokenSource('https://tvm.example/tokens', { fetch, marginSeconds: 30 });
    const seen = [];
    source.subscribe(() => { throw new Error('subscriber bug'); });
    source.subscribe((t) => seen.push(t.token));
    assert.equal((await source.current()).token, 't0');
    await advance(71_000);
    source.stop();
    assert.deepEqual(seen, ['t0', 't1']);
    assert.equal(reported.length, 2, 'the exception is reported, not swallowed');
  } finally {
    console.error = original;
  }
}));

test('subscribers hear of a token once, not on every fetch that returns it again', { timeout: 10_000 }, withClock(async () => {
  const { fetch, calls } = scriptedFetch(() => answer('same', Date.now(), 100));
  const source = createTokenSource('https://tvm.example/tokens', { fetch, marginSeconds: 30 });
  const seen = [];
  source.subscribe((t) => seen.push(t.token));
  await flush();
  await advance(150_000);
  source.stop();
  assert.ok(calls.length >= 3);
  assert.deepEqual(seen, ['same']);
}));

for (const skewHours of [+1, -1]) {
  test(`a browser clock ${skewHours > 0 ? 'an hour fast' : 'an hour slow'} changes nothing`, { timeout: 10_000 }, withClock(async () => {
    // The server's clock is right; the browser's (Date.now) is off by an hour.
    const serverNow = () => Date.now() - skewHours * 3_600_000;
    const { fetch, calls } = scriptedFetch((call) => answer(`t${call.n}`, serverNow(), 3600));
    const source = createTokenSource('https://tvm.example/tokens', { fetch, marginSeconds: 30 });
    const first = await source.current();
    assert.equal(first.token, 't0', 'current() resolves with the fresh token');
    await advance(3_500_000, 10_000);
    assert.equal(calls.length, 1, 'no polling: the token has an hour');
    assert.equal((await source.current()).token, 't0');
    await advance(100_000, 10_000);
    source.stop();
    assert.equal(calls.length, 2, 'refreshed 30 s before the end of its hour');
    assert.ok(calls[1].at - calls[0].at >= 3_570_000 && calls[1].at - calls[0].at <= 3_580_000);
  }));
}

test('Retry-After is honoured with jitter, and reported', { timeout: 10_000 }, withClock(async () => {
  let first = true;
  const { fetch, calls } = scriptedFetch(() => {
    if (first) {
      first = false;
      return { status: 503, body: { message: 'busy' }, headers: { 'retry-after': '1' } };
    }
    return answer('t', Date.now());
  });
  const errors = [];
  const source = createTokenSource('https://tvm.example/tokens', { fetch, onError: (e) => errors.push(e.status) });
  await flush();
  await advance(999, 1);
  assert.equal(calls.length, 1, 'not before Retry-After');
  await advance(600, 1);
  source.stop();
  assert.equal(calls.length, 2, 'within 1.5 × Retry-After');
  assert.deepEqual(errors, [503]);
}));
