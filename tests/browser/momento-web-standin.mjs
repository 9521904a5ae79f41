// A loopback stand-in for Momento's topic service as the web SDK reaches it: gRPC-web
// (text mode) Subscribe calls, answered inside Chromium through Playwright's request
// routing, so the real @gomomento/sdk-web in the page subscribes, streams and resumes
// exactly as it would against Momento. It keeps one topic's messages, numbered from 1 as
// Momento numbers them, and answers each Subscribe call the way a long poll would: with the
// messages at or after the call's resume_at_topic_sequence_number once there are any (a
// new subscription first gets a heartbeat, which is what makes the SDK's subscribe resolve),
// then ends the call; the SDK then resubscribes from the next sequence number by itself.
// refuse(reason) answers the next calls with UNAUTHENTICATED, as Momento does for a token
// that has expired.

const SUBSCRIBE = '**/cache_client.pubsub.Pubsub/Subscribe';
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': '*',
  'access-control-allow-methods': 'POST, OPTIONS',
  'access-control-expose-headers': 'grpc-status, grpc-message',
};

// Protocol buffers, the few shapes needed (field numbers from Momento's cachepubsub.proto).
const varint = (n) => {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
};
const field = (number, bytes) => [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes];
const uint = (number, n) => [...varint(number << 3), ...varint(n)];
const text = (s) => [...Buffer.from(s, 'utf8')];
const heartbeatItem = () => field(3, []); // _SubscriptionItem.heartbeat
const topicItem = (sequence, value) => field(1, [ // _SubscriptionItem.item: _TopicItem
  ...uint(1, sequence), // topic_sequence_number
  ...field(2, field(1, text(value))), // value: _TopicValue.text
  ...uint(4, 1), // sequence_page
]);

function parseSubscriptionRequest(bytes) {
  const request = { cacheName: '', topic: '', resumeAt: 0 };
  let i = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[i++];
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result;
      shift += 7n;
    }
  };
  while (i < bytes.length) {
    const key = Number(readVarint());
    const [number, wire] = [key >> 3, key & 7];
    if (wire === 2) {
      const length = Number(readVarint());
      const value = Buffer.from(bytes.slice(i, i + length)).toString('utf8');
      i += length;
      if (number === 1) request.cacheName = value;
      if (number === 2) request.topic = value;
    } else if (wire === 0) {
      const value = Number(readVarint());
      if (number === 3) request.resumeAt = value;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return request;
}

// gRPC-web framing: 1 flag byte (0 message, 0x80 trailers), 4 length bytes, payload; text mode base64s it.
const frame = (flag, payload) => {
  const length = payload.length;
  return [flag, (length >>> 24) & 255, (length >>> 16) & 255, (length >>> 8) & 255, length & 255, ...payload];
};
const trailers = (status, message = '') => frame(0x80, text(`grpc-status:${status}\r\ngrpc-message:${encodeURIComponent(message)}\r\n`));

export async function installMomentoWebStandin(context) {
  const messages = []; // {sequence, value}
  const calls = []; // {authorization, topic, resumeAt}
  let refusal = null;
  let wake = []; // resolvers of calls waiting for a message
  const starts = new Map(); // authorization -> how many messages there were when it first subscribed
  let closed = false;
  // Trailers-only answer: UNAUTHENTICATED (16), the code Momento gives an expired token.
  const refuse = (route, headers) => route.fulfill({
    status: 200, headers: { ...headers, 'grpc-status': '16', 'grpc-message': encodeURIComponent(refusal) }, body: '',
  }).catch(() => {});

  async function answer(route) {
    const request = route.request();
    if (request.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: CORS });
    const body = Buffer.from(request.postData() ?? '', 'base64');
    const parsed = parseSubscriptionRequest([...body.subarray(5, 5 + body.readUInt32BE(1))]);
    const call = { authorization: request.headers().authorization, ...parsed };
    calls.push(call);
    const headers = { ...CORS, 'content-type': 'application/grpc-web-text' };
    if (refusal) return refuse(route, headers);
    let frames;
    if (parsed.resumeAt === 0 && !starts.has(call.authorization)) {
      starts.set(call.authorization, messages.length); // a new subscription: from the next message on
      frames = frame(0, heartbeatItem());
    } else {
      // The SDK's own resubscribe: from where it asks, or (nothing received yet) from its start.
      const from = parsed.resumeAt || starts.get(call.authorization) + 1;
      while (!closed && !refusal && !messages.some((m) => m.sequence >= from)) {
        await new Promise((resolve) => wake.push(resolve));
      }
      if (closed) return route.abort().catch(() => {});
      if (refusal) return refuse(route, headers);
      frames = messages.filter((m) => m.sequence >= from).flatMap((m) => frame(0, topicItem(m.sequence, m.value)));
    }
    const bytes = Buffer.from([...frames, ...trailers(0)]);
    return route.fulfill({ status: 200, headers, body: bytes.toString('base64') }).catch(() => {});
  }

  await context.route(SUBSCRIBE, (route) => answer(route));
  const release = () => { const w = wake; wake = []; for (const resolve of w) resolve(); };
  return {
    calls,
    /** Publishes to the topic; subscriptions waiting get it at once. */
    publish(value) {
      messages.push({ sequence: messages.length + 1, value });
      release();
    },
    /** From now on every call is refused as an expired token is (null: accept again). */
    refuse(reason) {
      refusal = reason;
      release();
    },
    async close() {
      closed = true;
      release();
      await context.unroute(SUBSCRIBE).catch(() => {});
    },
  };
}
