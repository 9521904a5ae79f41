// A scripted stand-in for the parts of @gomomento/sdk-web (1.118) that web/order-updates.js
// uses, with the same shapes: TopicClient.subscribe resolves with a
// TopicSubscribe.Subscription or a TopicSubscribe.Error, but only when the test says so
// (the real SDK resolves on the stream's first message), so a test decides the order
// subscribes finish in. The topic numbers each message, as Momento does; a subscription
// receives what is published while it streams (from when it is accepted until unsubscribed).
export const MomentoErrorCode = {
  AUTHENTICATION_ERROR: 'AUTHENTICATION_ERROR',
  PERMISSION_ERROR: 'PERMISSION_ERROR',
  SERVER_UNAVAILABLE: 'SERVER_UNAVAILABLE',
};

export const Configurations = { Browser: { v1: () => ({ kind: 'browser-v1' }) } };
export const CredentialProvider = { fromDisposableToken: (token) => ({ token }) };

class Subscription {
  constructor(attempt) { this.attempt = attempt; }
  unsubscribe() { this.attempt.unsubscribed = true; }
  get isSubscribed() { return this.attempt.streaming && !this.attempt.unsubscribed; }
}
class SubscribeError {
  constructor(code, message) { this.code = code; this.text = message; }
  errorCode() { return this.code; }
  message() { return this.text; }
}
export const TopicSubscribe = { Subscription, Error: SubscribeError };

class TopicItem {
  constructor(value, sequenceNumber) { this.value = value; this.sequence = sequenceNumber; }
  valueString() { return this.value; }
  sequenceNumber() { return this.sequence; }
}

/** What the test drives: every client and subscribe attempt, and the topic. */
export const momento = {
  clients: [],
  attempts: [],
  sequence: 0,
  reset() { this.clients = []; this.attempts = []; this.sequence = 0; },
  /** Publishes to every streaming subscription; returns the message's sequence number. */
  publish(value) {
    const sequence = ++this.sequence;
    for (const a of this.attempts) if (a.streaming && !a.unsubscribed) a.options.onItem(new TopicItem(value, sequence));
    return sequence;
  },
  /** Subscriptions that would still deliver messages. */
  streaming() { return this.attempts.filter((a) => a.streaming && !a.unsubscribed); },
};

export class TopicClient {
  constructor({ configuration, credentialProvider }) {
    this.configuration = configuration;
    this.token = credentialProvider.token;
    this.closed = false;
    momento.clients.push(this);
  }
  subscribe(cache, topic, options) {
    if (this.closed) throw new Error('subscribe on a closed TopicClient');
    let settle;
    const promise = new Promise((resolve) => { settle = resolve; });
    const attempt = {
      client: this, token: this.token, cache, topic, options, streaming: false, unsubscribed: false, settled: false,
      /** The stream's first message arrives: the subscribe resolves with a Subscription. */
      accept() {
        attempt.settled = true;
        attempt.streaming = true;
        settle(new Subscription(attempt));
      },
      /** The first message is an error: the subscribe resolves with it. */
      refuse(code, message) {
        attempt.settled = true;
        settle(new SubscribeError(code, message));
      },
      /** A later error the SDK does not retry: it ends the subscription, then calls onError. */
      fail(code, message) {
        attempt.unsubscribed = true;
        options.onError(new SubscribeError(code, message), null);
      },
    };
    momento.attempts.push(attempt);
    return promise;
  }
  close() { this.closed = true; }
}
