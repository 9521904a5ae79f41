// Browser tier: headless Chromium on one origin calls the dev server on another.
//
// Starts `tests/tools/dev.sh` (loopback Momento stand-in + the function under
// `cargo lambda watch --disable-cors`, so only the function's own CORS headers
// count), invokes every sample event with `cargo lambda invoke`, then drives a
// page served from a different origin and checks what the browser let it read.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, readdir, mkdir } from 'node:fs/promises';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import assert from 'node:assert/strict';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { installMomentoWebStandin } from './momento-web-standin.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const outDir = path.join(root, 'test-output');
const FUNCTION = 'token-vending-machine';
// cargo-lambda lives in the project venv that `make` installs.
process.env.PATH = `${path.join(root, '.venv/bin')}:${process.env.PATH}`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Starts dev.sh in its own process group and resolves with the base URL once it prints READY.
async function startDev(ports, extraEnv = {}) {
  const env = { ...process.env, DEV_PORT: String(ports.dev), STANDIN_PORT: String(ports.standin) };
  if (ports.control) env.CONTROL_PORT = String(ports.control);
  for (const name of ['MOMENTO_API_KEY', 'MOMENTO_ENDPOINT', 'MOMENTO_ENDPOINT_OVERRIDE', 'SECRET_ID']) delete env[name];
  Object.assign(env, extraEnv);
  const child = spawn(path.join(root, 'tests/tools/dev.sh'), [], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dev server not ready in 15 min:\n${logs}`)), 15 * 60 * 1000);
    const onData = (chunk) => {
      logs += chunk;
      const m = logs.match(/^READY (\S+)$/m);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => { logs += c; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`dev.sh exited (${code}):\n${logs}`)); });
  });
  const base = await ready;
  child.removeAllListeners('exit');
  return { child, base, logs: () => logs };
}

function stopDev(dev) {
  try { process.kill(-dev.child.pid, 'SIGTERM'); } catch { /* already gone */ }
}

function run(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: root, maxBuffer: 1 << 20 }, (error, stdout, stderr) => resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr }));
  });
}

async function setFault(controlPort, op, fault) {
  const res = await fetch(`http://127.0.0.1:${controlPort}/faults/${op}`, { method: 'PUT', body: fault });
  assert.equal(res.status, 204, `stand-in control ${op}=${fault}`);
}

async function checkEvents(devPort, expectations = 'tests/event-expectations.json') {
  const expected = JSON.parse(await readFile(path.join(root, expectations), 'utf8'));
  const files = (await readdir(path.join(root, 'events'))).filter((f) => f.endsWith('.json')).sort();
  if (expectations === 'tests/event-expectations.json') {
    assert.deepEqual(files, Object.keys(expected).sort(), `events/ and ${expectations} disagree`);
  }
  for (const file of Object.keys(expected).sort()) {
    const r = await run('cargo', ['lambda', 'invoke', FUNCTION, '-A', '127.0.0.1', '-P', String(devPort), '--output-format', 'json', '--data-file', `events/${file}`]);
    if (expected[file] === null) {
      assert.notEqual(r.code, 0, `${file}: expected an invocation error`);
      console.log(`  cargo lambda invoke ${file} (${expectations}): invocation error, as expected`);
    } else {
      assert.equal(r.code, 0, `${file}: ${r.stderr}`);
      const status = JSON.parse(r.stdout).statusCode;
      assert.equal(status, expected[file], `${file}: ${r.stdout}`);
      console.log(`  cargo lambda invoke ${file} (${expectations}): ${status}`);
    }
  }
}

// A second `make dev` on a port that is taken must say so and stop, not hang.
async function checkBusyPort(ports) {
  const env = { ...process.env, DEV_PORT: String(ports.dev), STANDIN_PORT: String(ports.standin) };
  delete env.MOMENTO_API_KEY;
  delete env.SECRET_ID;
  const r = await new Promise((resolve) => {
    execFile(path.join(root, 'tests/tools/dev.sh'), [], { cwd: root, env, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stderr }));
  });
  assert.equal(r.code, 2, `dev.sh on a busy port: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`port ${ports.dev} is already in use`));
  console.log('  make dev on a busy port: refused with a clear message');
}

// The stand-in binary prints KEY=VALUE lines, MOMENTO_API_KEY last; resolves with them.
function readStandinVars(child) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (/^MOMENTO_API_KEY=.*$/m.test(out)) {
        resolve(Object.fromEntries(out.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])));
      }
    });
    child.on('exit', (code) => reject(new Error(`momento-standin exited (${code}): ${out}`)));
  });
}

// make dev's two other key sources: a key in MOMENTO_API_KEY, and a Secrets Manager secret
// (SECRET_ID). Real Momento and AWS are out of reach here, so both point at stand-ins run apart
// from dev.sh, holding a key dev.sh does not know: a 200 proves the function used the key it
// was given, and dev.sh must not start a stand-in of its own.
async function checkKeySources() {
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  const standin = spawn(path.join(targetDir, 'debug/momento-standin'),
    ['--port', String(await freePort()), '--api-key', 'given-key-not-the-dev-default', '--secret', 'tvm/dev'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const vars = await readStandinVars(standin);
    const sources = [
      ['MOMENTO_API_KEY', { MOMENTO_API_KEY: vars.MOMENTO_API_KEY }, /with the key in MOMENTO_API_KEY/],
      ['SECRET_ID', {
        SECRET_ID: vars.SECRET_ID, AWS_ENDPOINT_URL_SECRETS_MANAGER: vars.AWS_ENDPOINT_URL_SECRETS_MANAGER,
        AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example-secret',
        AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      }, /with the key from Secrets Manager secret tvm\/dev/],
    ];
    for (const [label, extra, mode] of sources) {
      const ports = { dev: await freePort(), standin: await freePort() };
      const dev = await startDev(ports, { MOMENTO_ENDPOINT_OVERRIDE: vars.MOMENTO_ENDPOINT_OVERRIDE, ...extra });
      try {
        assert.match(dev.logs(), mode, label);
        assert.doesNotMatch(dev.logs(), /\[stand-in\]/, `${label}: dev.sh started its own stand-in`);
        const res = await fetch(`${dev.base}/tokens`);
        const body = await res.json();
        assert.equal(res.status, 200, `${label}: ${JSON.stringify(body)}`);
        assert.ok(body.token && body.exp > Date.now() / 1000, label);
        console.log(`  make dev with ${label}: no stand-in of its own, 200 with the given key`);
      } finally {
        stopDev(dev);
      }
    }
  } finally {
    standin.kill();
  }
}

// The pages' server: the cross-origin check page, the token client page, the client and the SDK.
async function pageFiles() {
  const js = 'text/javascript; charset=utf-8';
  return {
    '/client.html': ['text/html; charset=utf-8', await readFile(path.join(here, 'client.html'))],
    '/web/tvm-client.js': [js, await readFile(path.join(root, 'web/tvm-client.js'))],
    '/web/order-updates.js': [js, await readFile(path.join(root, 'web/order-updates.js'))],
    // The SDK build web/index.html loads (make web writes it; make browser builds it first).
    '/sdk.js': [js, await readFile(path.join(root, 'web/vendor/momento-sdk-web.js'))],
  };
}

// web/tvm-client.js in Chromium against a function whose tokens live 120 s (the shortest
// TOKEN_TTL_SECONDS allows). The function replaces a token with 60 s or less left, so a client
// refreshing 59 s before `exp` gets a new token about 61 s after the first. Prints the timeline.
async function checkTokenClient(browser, pageBase) {
  const ports = { dev: await freePort(), standin: await freePort(), control: await freePort() };
  const dev = await startDev(ports, { TOKEN_TTL_SECONDS: '120', CACHE_TTL_SECONDS: '60' });
  try {
    const tokens = `${dev.base}/tokens`;
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${pageBase}/client.html`);
    assert.equal(await page.evaluate(() => window.clientReady), true, 'client page loaded');

    // Throttled with nothing to share: 503 + Retry-After: 1, then minting recovers.
    await setFault(ports.control, 'mint', 'resource_exhausted');
    await page.evaluate((u) => window.startSource('live', u, { marginSeconds: 59 }), tokens);
    await page.waitForFunction(() => window.fetches.some((f) => f.status === 503));
    await setFault(ports.control, 'mint', 'none');
    await page.waitForFunction(() => window.tokens.length >= 2, null, { timeout: 120_000 });
    const { fetches, tokens: got } = await page.evaluate(() => ({ fetches: window.fetches, tokens: window.tokens }));
    const t0 = fetches[0].startedAt;
    for (const [i, f] of fetches.entries()) {
      console.log(`  client fetch ${i + 1}: +${f.startedAt - t0} ms → ${f.status ?? f.error} at +${f.answeredAt - t0} ms`);
    }
    for (const [i, t] of got.entries()) {
      console.log(`  client token ${i + 1}: received +${t.receivedAt - t0} ms, exp in ${Math.round(t.exp * 1000 - t.receivedAt)} ms`);
    }
    assert.equal(fetches[0].status, 503);
    assert.equal(fetches[0].retryAfter, '1');
    for (let i = 1; i < fetches.length; i++) {
      if (fetches[i - 1].status !== 503) continue;
      const waited = fetches[i].startedAt - fetches[i - 1].answeredAt;
      assert.ok(waited >= 1000, `fetch ${i + 1} came ${waited} ms after a 503 with Retry-After: 1`);
    }
    assert.notEqual(got[1].token, got[0].token, 'the refresh brought a new token');
    assert.ok(got[1].receivedAt < got[0].exp * 1000, 'the new token came before the first expired');

    // Momento's web SDK takes the vended token; a string of another shape is refused.
    const accepted = await page.evaluate((t) => window.momentoAccepts(t), got[1].token);
    assert.deepEqual(accepted, { accepted: true, endpoint: 'cache.standin.momento.localhost' });
    const refused = await page.evaluate(() => window.momentoAccepts('not-a-token'));
    assert.equal(refused.accepted, false, 'the SDK must refuse a token of another shape');
    console.log(`  Momento web SDK: vended token accepted (${accepted.endpoint}); "not-a-token" refused (${refused.error})`);
    await page.evaluate(() => window.sources.live.stop());
    await page.screenshot({ path: path.join(outDir, 'client.png'), fullPage: true });

    // stop() ends the timers: under Playwright's fake clock, two hours pass; the stopped source
    // fetches nothing more, while a running one (the control) refreshes.
    const fake = await (await browser.newContext()).newPage();
    await fake.clock.install();
    await fake.goto(`${pageBase}/client.html`);
    assert.equal(await fake.evaluate(() => window.clientReady), true, 'client page loaded');
    await fake.evaluate(async (u) => {
      window.startSource('stopped', u, { marginSeconds: 59 });
      window.startSource('running', u, { marginSeconds: 59 });
      await window.sources.stopped.current();
      await window.sources.running.current();
      window.sources.stopped.stop();
    }, tokens);
    await fake.evaluate(() => { window.runningFetched = window.nextFetch('running'); });
    await fake.clock.runFor('02:00:00');
    await fake.evaluate(() => window.runningFetched);
    const counts = await fake.evaluate(() => ({
      stopped: window.fetches.filter((f) => f.source === 'stopped').length,
      running: window.fetches.filter((f) => f.source === 'running').length,
    }));
    assert.equal(counts.stopped, 1, 'a stopped source fetches nothing more');
    assert.ok(counts.running >= 2, 'the running source refreshed under the same clock');
    console.log(`  stop(): after 2 h of fake time, stopped source ${counts.stopped} fetch, running source ${counts.running}`);
  } catch (e) {
    console.error(dev.logs());
    throw e;
  } finally {
    stopDev(dev);
  }
}

// CALLER_IDENTITY=cognito: the cognito events through `cargo lambda invoke`, then the token
// client in the browser against it. `make dev`'s function URL has no authorizer, so every GET
// is a 401 here: the client must send the ID token it is given, report the 401 to its error
// listeners and back off, and the browser must be able to read the 401 cross-origin.
async function checkSignedIn(browser, pageBase) {
  const ports = { dev: await freePort(), standin: await freePort(), control: await freePort() };
  const dev = await startDev(ports, { CALLER_IDENTITY: 'cognito' });
  try {
    await checkEvents(ports.dev, 'tests/event-expectations-cognito.json');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${pageBase}/client.html`);
    assert.equal(await page.evaluate(() => window.clientReady), true, 'client page loaded');
    await page.evaluate((u) => window.startSource('signed-in', u, { authorization: () => 'id-token-from-cognito', retryMinMs: 200 }), `${dev.base}/tokens`);
    await page.waitForFunction(() => window.errors.length >= 3, null, { timeout: 30_000 });
    const { fetches, errors } = await page.evaluate(() => ({
      fetches: window.fetches.filter((f) => f.source === 'signed-in'),
      errors: window.errors,
    }));
    await page.evaluate(() => window.sources['signed-in'].stop());
    assert.equal(fetches[0].authorization, 'id-token-from-cognito', 'the ID token is sent');
    assert.deepEqual(errors[0], { source: 'signed-in', status: 401, message: 'Sign in to get a token' });
    const gaps = fetches.slice(1, 3).map((f, i) => f.startedAt - fetches[i].answeredAt);
    assert.ok(gaps.every((g) => g >= 100), `retried with back-off, not in a loop: ${gaps}`);
    console.log(`  signed-in client: Authorization sent, 401 reported ${errors.length}× with back-off (${gaps.join(', ')} ms)`);
  } catch (e) {
    console.error(dev.logs());
    throw e;
  } finally {
    stopDev(dev);
  }
}

// web/order-updates.js, the browser example as it is, in Chromium against the dev
// server: it must fetch a token and hand it to Momento's web SDK for a subscription. The SDK's
// Momento endpoint is the stand-in's made-up host, which this machine cannot reach, so the
// subscription itself fails and is reported through onError: what is proven is the wiring.
async function checkReadmeExample(browser, pageBase, tokensUrl) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${pageBase}/client.html`);
  assert.equal(await page.evaluate(() => window.clientReady), true, 'client page loaded');
  await page.evaluate((u) => window.startExample(u), tokensUrl);
  await page.waitForFunction(() => window.exampleErrors.some((e) => e.message.startsWith('subscri')), null, { timeout: 30_000 });
  const { fetched, errors } = await page.evaluate(() => ({ fetched: window.exampleFetched, errors: window.exampleErrors }));
  await page.evaluate(() => window.example.stop());
  assert.equal(fetched, 200, 'the example fetched a token');
  assert.ok(errors.every((e) => e.status === null), `only the unreachable subscription failed: ${JSON.stringify(errors)}`);
  console.log(`  browser example (web/order-updates.js): token fetched, subscription attempted with it (${errors[0].message.slice(0, 80)})`);
}

// The static server docs/browser.md tells users to run, as written there (only the port
// differs), serving web/ as it is.
async function serveWebAsDocumented() {
  const doc = await readFile(path.join(root, 'docs/browser.md'), 'utf8');
  const command = doc.split('\n').map((l) => l.trim()).find((l) => l.startsWith('python3 -m http.server'));
  assert.ok(command, 'docs/browser.md shows the command that serves web/');
  assert.match(command, / 8000 /, `the documented command serves port 8000: ${command}`);
  const port = await freePort();
  const child = spawn('bash', ['-c', `exec ${command.replace(' 8000 ', ` ${port} `)}`], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += c; });
  // Ready when it accepts a connection (polled, at most 10 s).
  for (let i = 0; ; i++) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (open) break;
    if (i >= 200 || child.exitCode !== null) throw new Error(`${command}: not serving (${stderr})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { base: `http://127.0.0.1:${port}`, command, stop: () => child.kill() };
}

// web/index.html as a user serves it, in Chromium: the real SDK (from make web's build, through
// the page's import map) subscribes through a gRPC-web stand-in and the page shows what is
// published. Then the laptop sleeps: the page's clock jumps 2 h while its timers stand still,
// and a visibilitychange must bring a token fetch within 2 s; updates keep arriving, once each.
// Last, Momento refuses the token as expired: the page must ask the TVM for a new one.
async function checkIndexPage(browser, tokensUrl) {
  const server = await serveWebAsDocumented();
  const context = await browser.newContext();
  const momento = await installMomentoWebStandin(context);
  try {
    const page = await context.newPage();
    const tokenRequests = [];
    page.on('request', (r) => { if (r.url() === tokensUrl) tokenRequests.push(Date.now()); });
    await page.clock.install();
    const pageUrl = `${server.base}/?tvm=${encodeURIComponent(tokensUrl)}&topic=order-1`;
    await page.goto(pageUrl);
    await page.waitForSelector('#status[data-state="live"]', { timeout: 30_000 });
    assert.equal(await page.inputValue('#tvm'), tokensUrl, 'the form shows the ?tvm= URL');
    const updates = () => page.$$eval('#updates li .value', (items) => items.map((v) => v.textContent).reverse());
    momento.publish('order-1: in the oven');
    await page.waitForFunction(() => document.querySelectorAll('#updates li').length === 1, null, { timeout: 10_000 });
    assert.deepEqual(await updates(), ['order-1: in the oven']);
    console.log(`  web/index.html (served by "${server.command}"): live on order-1, update shown; ${tokenRequests.length} token request`);

    // Sleep past exp: Date jumps past the token's hour, no timer fires (setSystemTime).
    const beforeSleep = tokenRequests.length;
    await page.clock.setSystemTime(Date.now() + 2 * 3_600_000 + 5 * 60_000);
    await page.clock.runFor(1000); // a second awake: timers run, none is due
    assert.equal(tokenRequests.length, beforeSleep, 'no timer fetched: the sleep is invisible to timers');
    const fetched = page.waitForResponse(tokensUrl, { timeout: 2000 });
    const wokeAt = Date.now();
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    const response = await fetched;
    const body = await response.json();
    assert.equal(response.status(), 200);
    assert.ok(body.expires_in > 60, `a token with life left: ${body.expires_in} s`);
    console.log(`  web/index.html after a 2 h sleep: visibilitychange fetched a token in ${Date.now() - wokeAt} ms (real time)`);
    momento.publish('order-1: out for delivery');
    await page.waitForFunction(() => document.querySelectorAll('#updates li').length === 2, null, { timeout: 10_000 });
    assert.deepEqual(await updates(), ['order-1: in the oven', 'order-1: out for delivery'], 'each update once, in order');

    // Momento refuses the token: the subscription error makes the page fetch a new one.
    const refetched = page.waitForResponse(tokensUrl, { timeout: 5000 });
    momento.refuse('token expired');
    await refetched;
    await page.waitForFunction(() => /Authentication|token expired/i.test(document.getElementById('errors').textContent), null, { timeout: 10_000 });
    console.log(`  web/index.html, token refused by Momento: the page asked the TVM again (${tokenRequests.length} token requests in all)`);
    await page.screenshot({ path: path.join(outDir, 'index.png'), fullPage: true });
    await page.evaluate(() => window.orderUpdates.stop());
  } finally {
    await momento.close();
    await context.close();
    server.stop();
  }
}

// A browser whose clock is an hour off, either way, against hour-long tokens: the client times
// its refresh from `expires_in` and the answer's arrival, so current() resolves and it doesn't
// poll (a client comparing `exp` with a clock an hour fast would wait forever; one an hour slow
// would keep a dead token).
async function checkClockSkew(browser, pageBase, tokensUrl) {
  for (const skewHours of [+1, -1]) {
    const page = await (await browser.newContext()).newPage();
    await page.clock.install({ time: Date.now() + skewHours * 3_600_000 });
    await page.goto(`${pageBase}/client.html`);
    assert.equal(await page.evaluate(() => window.clientReady), true, 'client page loaded');
    const token = await page.evaluate(async (u) => {
      window.startSource('skewed', u, {});
      return window.sources.skewed.current();
    }, tokensUrl);
    assert.ok(token.token.length > 0, `current() resolved with a ${skewHours > 0 ? 'fast' : 'slow'} clock`);
    await page.clock.runFor('10:00');
    const fetched = await page.evaluate(() => window.fetches.filter((f) => f.source === 'skewed').length);
    await page.evaluate(() => window.sources.skewed.stop());
    assert.equal(fetched, 1, `clock ${skewHours > 0 ? '+' : ''}${skewHours} h: no polling in 10 min of a 1 h token`);
    console.log(`  clock ${skewHours > 0 ? '+' : ''}${skewHours} h: current() resolved, 1 fetch in 10 min of page time`);
  }
}

// The same module in Node (20+ has fetch): a token from the dev server, then stop().
async function checkNodeClient(base) {
  const { createTokenSource } = await import(pathToFileURL(path.join(root, 'web/tvm-client.js')).href);
  const source = createTokenSource(`${base}/tokens`);
  const token = await source.current();
  source.stop();
  assert.equal(typeof token.token, 'string');
  assert.ok(token.token.length > 0 && token.exp > Date.now() / 1000 + 60, JSON.stringify(token.exp));
  console.log(`  web/tvm-client.js in Node ${process.version}: token received (exp in ${Math.round(token.exp - Date.now() / 1000)} s), stopped`);
}

async function main() {
  await mkdir(outDir, { recursive: true });
  const ports = { dev: await freePort(), standin: await freePort(), control: await freePort() };
  const dev = await startDev(ports);
  const pageHtml = await readFile(path.join(here, 'page.html'));
  const files = await pageFiles();
  const pageServer = createServer((req, res) => {
    const [type, body] = files[new URL(req.url, 'http://x').pathname] ?? ['text/html; charset=utf-8', pageHtml];
    res.writeHead(200, { 'content-type': type });
    res.end(body);
  });
  pageServer.listen(0, '127.0.0.1');
  await once(pageServer, 'listening');
  // "localhost" vs "127.0.0.1" and another port: a different origin by every measure.
  const pageUrl = `http://localhost:${pageServer.address().port}/`;
  let browser;
  try {
    console.log(`dev server ${dev.base}; page ${pageUrl}`);
    await checkBusyPort(ports);
    await checkKeySources();
    await checkEvents(ports.dev);

    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(pageUrl);
    const tokens = `${dev.base}/tokens`;
    const fetchJson = (label, url) => page.evaluate(([l, u]) => window.fetchJson(l, u), [label, url]);

    // Negative control: a response without CORS headers is refused by this browser.
    const control = await fetchJson('stand-in control port (no CORS)', `http://127.0.0.1:${ports.control}/faults/none`);
    assert.equal(control.readable, false, 'the browser must refuse responses without CORS headers');

    // Errors are readable cross-origin (before any token is cached for this caller). A failed
    // mint would share the sample events' fresh tokens: a refused key is what still fails.
    await setFault(ports.control, 'mint', 'unauthenticated');
    const failed = await fetchJson('key refused', tokens);
    assert.equal(failed.readable, true, `500 must be readable: ${failed.error}`);
    assert.equal(failed.status, 500);
    assert.deepEqual(failed.body, { message: 'Something went wrong' });
    await setFault(ports.control, 'mint', 'internal');
    const shared = await fetchJson('mint fails: a fresh token is shared', tokens);
    assert.equal(shared.status, 200, 'a failed mint shares a fresh token');

    // The sample events above left fresh tokens in this container: throttled minting shares one.
    // (The 503 a container with nothing to share answers is read in checkTokenClient.)
    await setFault(ports.control, 'mint', 'resource_exhausted');
    const throttled = await fetchJson('mint throttled: a fresh token is shared', tokens);
    assert.equal(throttled.readable, true, `shared token must be readable: ${throttled.error}`);
    assert.equal(throttled.status, 200);
    assert.ok(throttled.body.exp > Date.now() / 1000 + 60, 'a shared token outlives the refresh margin');
    await setFault(ports.control, 'mint', 'none');

    const first = await fetchJson('first token', tokens);
    assert.equal(first.readable, true, `200 must be readable: ${first.error}`);
    assert.equal(first.status, 200);
    assert.equal(typeof first.body.token, 'string');
    assert.ok(first.body.token.length > 0);
    assert.ok(Number.isInteger(first.body.exp));
    assert.ok(first.body.exp > Date.now() / 1000, 'exp is in the future');

    const second = await fetchJson('second token (cache hit)', tokens);
    assert.equal(second.status, 200);
    assert.equal(second.body.token, first.body.token, 'same caller, same token');

    const missing = await fetchJson('unknown path', `${dev.base}/nope`);
    assert.equal(missing.readable, true);
    assert.equal(missing.status, 404);

    await page.screenshot({ path: path.join(outDir, 'browser.png'), fullPage: true });

    await checkReadmeExample(browser, `http://localhost:${pageServer.address().port}`, tokens);
    await checkIndexPage(browser, tokens);
    await checkClockSkew(browser, `http://localhost:${pageServer.address().port}`, tokens);
    await checkTokenClient(browser, `http://localhost:${pageServer.address().port}`);
    await checkSignedIn(browser, `http://localhost:${pageServer.address().port}`);
    await checkNodeClient(dev.base);
    console.log(`browser test passed; screenshots: test-output/browser.png, test-output/client.png`);
  } catch (e) {
    console.error(dev.logs());
    throw e;
  } finally {
    if (browser) await browser.close();
    pageServer.close();
    stopDev(dev);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
