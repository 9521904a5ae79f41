// Unit tests of web/order-updates.js in Node, the file as it is: its bare import of
// '@gomomento/sdk-web' resolves to a scripted stand-in (fake-momento/), tokens come from a
// scripted TVM through the global fetch, and time is virtual (virtual-time.mjs).
// The handover race: subscribes of two tokens resolving in either order; messages published
// before, during and after; a subscription refused for its token.
// TVM_WEB_DIR=<dir> runs them against another copy of web/ (the before/after counts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { installVirtualTime, fakeTvm } from './virtual-time.mjs';

register('./fake-momento/hooks.mjs', import.meta.url);
const webDir = process.env.TVM_WEB_DIR ? pathToFileURL(`${process.env.TVM_WEB_DIR}/`) : new URL('../../web/', import.meta.url);
const { followOrderUpdates } = await import(new URL('order-updates.js', webDir));
const { momento } = await import('@gomomento/sdk-web');

const T = { timeout: 20_000 };

/** followOrderUpdates against a TVM minting 100 s tokens (refreshed 30 s before their end). */
function virtualPage(fn) {
  return async (t) => {
    const clock = installVirtualTime();
    const realFetch = globalThis.fetch;
    const tvm = fakeTvm({ lifetimeSeconds: 100 });
    globalThis.fetch = tvm.fetch;
    momento.reset();
    const items = [];
    const errors = [];
    let follower;
    try {
      follower = followOrderUpdates({
        tokensUrl: 'https://tvm.example/tokens', topic: 'order-1',
        onItem: (v) => items.push(v), onError: (e) => errors.push(e.message),
      });
      await clock.settle();
      await fn({ clock, tvm, items, errors, follower, t });
    } finally {
      follower?.stop();
      globalThis.fetch = realFetch;
      clock.uninstall();
    }
  };
}

const attemptFor = (token) => momento.attempts.filter((a) => a.token === token).at(-1);

for (const order of ['newer first', 'older first']) {
  test(`handover with subscribes resolving ${order}: the newest wins, nothing lost or repeated, old client closed`, T, virtualPage(async ({ clock, tvm, items, t }) => {
    const published = [];
    const publish = (v) => { published.push(v); momento.publish(v); };
    attemptFor('token-1').accept();
    await clock.settle();
    publish('m1');
    // token-1 is refreshed at 70 s (30 s before its end): token-2's subscribe starts.
    await clock.advance(70_000);
    assert.equal(tvm.calls.length, 2, 'a second token was fetched');
    const older = attemptFor('token-1');
    const newer = attemptFor('token-2');
    assert.ok(newer, 'subscribing with the new token');
    publish('m2'); // only the old subscription streams
    if (order === 'newer first') {
      newer.accept();
      publish('m3'); // same tick: both streams deliver it, before the handover runs
      await clock.settle();
      publish('m4');
    } else {
      // A third token's subscribe resolves first, then the second's: the second is the
      // older one here and must not replace the newest.
      await clock.advance(80_000); // token-2 refreshed: token-3
      const newest = attemptFor('token-3');
      assert.ok(newest, 'a third token');
      newest.accept();
      publish('m3');
      await clock.settle();
      newer.accept(); // token-2's subscribe finishes last
      publish('m4');
      await clock.settle();
    }
    publish('m5');
    await clock.settle();
    const streaming = momento.streaming().map((a) => a.token);
    const expectedLive = order === 'newer first' ? 'token-2' : 'token-3';
    const repeated = items.length - new Set(items).size;
    const lost = published.filter((v) => !items.includes(v));
    t.diagnostic(`count: handover, subscribes resolving ${order}: live ${JSON.stringify(streaming)}, ${lost.length} lost, ${repeated} repeated, old clients closed ${momento.clients.filter((c) => c.token !== expectedLive && c.closed).length}/${momento.clients.length - 1}`);
    assert.deepEqual(streaming, [expectedLive], 'only the newest token\'s subscription streams');
    assert.deepEqual(items, published, 'each message once, in order');
    assert.ok(older.unsubscribed && older.client.closed, 'the old subscription and its client are closed');
    for (const c of momento.clients) assert.equal(c.closed, c.token !== expectedLive, `client of ${c.token}`);
  }));
}

test('the old subscription is kept until the new one is live', T, virtualPage(async ({ clock, items }) => {
  attemptFor('token-1').accept();
  await clock.advance(70_000);
  const older = attemptFor('token-1');
  assert.ok(attemptFor('token-2'), 'subscribing with token-2');
  assert.equal(older.unsubscribed, false, 'still the live one while token-2 is pending');
  momento.publish('during');
  await clock.settle();
  assert.deepEqual(items, ['during']);
}));

test('a subscribe refused for its token fetches a new token at once and subscribes with it', T, virtualPage(async ({ clock, tvm, errors, t }) => {
  attemptFor('token-1').accept();
  await clock.advance(5_000);
  // The live subscription ends: Momento says the token expired (e.g. after a sleep).
  attemptFor('token-1').fail('AUTHENTICATION_ERROR', 'Invalid authentication credentials: token expired');
  await clock.advance(500);
  t.diagnostic(`count: subscription refused for an expired token: ${tvm.calls.length - 1} new token request(s) within 0.5 s`);
  assert.equal(tvm.calls.length, 2, 'a new token was asked for at once');
  assert.match(errors.join('\n'), /subscription: Invalid authentication credentials/);
}));

test('a subscribe whose first answer refuses the token also fetches a new one', T, virtualPage(async ({ clock, tvm }) => {
  attemptFor('token-1').refuse('PERMISSION_ERROR', 'Insufficient permissions');
  await clock.advance(500);
  assert.equal(tvm.calls.length, 2);
}));

test('other subscription errors resubscribe with the same token after a growing back-off, not in a loop', T, virtualPage(async ({ clock, tvm }) => {
  attemptFor('token-1').accept();
  await clock.settle();
  momento.attempts.at(-1).fail('SERVER_UNAVAILABLE', 'unavailable');
  const started = [];
  for (let i = 0; i < 6; i++) {
    const n = momento.attempts.length;
    await clock.until(() => momento.attempts.length > n, 60_000, 50);
    started.push(Date.now());
    momento.attempts.at(-1).refuse('SERVER_UNAVAILABLE', 'unavailable');
    await clock.settle();
  }
  const gaps = started.slice(1).map((at, i) => at - started[i]);
  assert.ok(gaps.every((g) => g >= 500), `resubscribed after ${gaps} ms`);
  assert.ok(gaps.at(-1) >= 8_000, `the back-off grew: ${gaps}`);
  assert.ok(momento.attempts.every((a) => a.token === 'token-1'), 'the same token');
  assert.equal(tvm.calls.length, 1, 'no new token for an error that is not about the token');
  momento.attempts.at(-1).accept(); // and once live again, the next failure starts from 1 s
}));

test('stop() closes the live subscription, its client, and any subscribe still pending', T, virtualPage(async ({ clock, follower }) => {
  attemptFor('token-1').accept();
  await clock.advance(70_000);
  follower.stop();
  attemptFor('token-2').accept();
  await clock.settle();
  assert.deepEqual(momento.streaming(), []);
  assert.ok(momento.clients.every((c) => c.closed));
}));
