// Live order updates for a page: tokens from the token vending machine, and a
// Momento topic subscription that moves to every new token without a gap or a
// repeat. web/index.html uses it; the browser test runs that page.
import { createTokenSource } from './tvm-client.js';
import { Configurations, CredentialProvider, MomentoErrorCode, TopicClient, TopicSubscribe } from '@gomomento/sdk-web';

// Errors that mean Momento would not take the token (expired, revoked, not allowed):
// only a new token helps, so the token source is told to fetch one.
const TOKEN_REFUSED = new Set([MomentoErrorCode.AUTHENTICATION_ERROR, MomentoErrorCode.PERMISSION_ERROR]);
const RESUBSCRIBE_MIN_MS = 1000;
const RESUBSCRIBE_MAX_MS = 30_000;

/**
 * Follows one topic until `stop()`.
 *
 * Handover: each new token opens a new TopicClient and subscription. Whatever order the
 * subscribes finish in, the newest token's subscription is the one kept; the one before it is
 * unsubscribed and its client closed only once the newer one is live, so nothing published in
 * between is missed. Both may deliver the same messages for a moment: each is passed on once,
 * by its topic sequence number (the web SDK does not let a new subscription resume at one).
 *
 * @param {object} o
 * @param {string} o.tokensUrl  `<OrderApiEndpoint>/tokens`; the output already starts with https://.
 * @param {string} o.topic  e.g. `orders-${sub}` for a signed-in customer.
 * @param {(value: string) => void} o.onItem  Called once with each message published to the topic.
 * @param {string} [o.cache='pizza']
 * @param {() => (string | Promise<string>)} [o.idToken]  Signed-in callers: the user's Cognito ID token.
 * @param {(e: {status: number | null, message: string}) => void} [o.onError]  Token and subscription failures.
 * @param {(state: 'live' | 'down') => void} [o.onState]  Whether a subscription is live.
 * @param {object} [o.tokenOptions]  Passed to createTokenSource (marginSeconds, retryMinMs, fetch...).
 */
export function followOrderUpdates({
  tokensUrl, topic, onItem, cache = 'pizza', idToken, onError = console.warn, onState = () => {}, tokenOptions = {},
}) {
  const tokens = createTokenSource(tokensUrl, { ...tokenOptions, authorization: idToken, onError });
  let newest = 0; // generation of the newest subscribe started
  let live = null; // the attempt whose subscription is kept: {generation, token, client, subscription}
  let lastSequence = -1; // highest topic sequence number passed to onItem
  let resubscribeFailures = 0;
  let retryTimer = null;
  let stopped = false;

  const close = (attempt) => {
    attempt.subscription?.unsubscribe();
    attempt.client.close?.(); // sdk-web 1.118 has none (a TopicClient holds no connection of its own)
  };

  const deliver = (item) => {
    const sequence = item.sequenceNumber();
    if (sequence <= lastSequence) return; // the other subscription of a handover passed it on already
    lastSequence = sequence;
    onItem(item.valueString());
  };

  function failed(attempt, error, what) {
    onError({ status: null, message: `${what}: ${error.message()}` });
    if (live === attempt) {
      live = null; // the SDK ends a subscription after an error it does not retry itself
      onState('down');
    }
    close(attempt);
    if (stopped || attempt.generation !== newest) return; // a newer attempt is under way
    if (TOKEN_REFUSED.has(error.errorCode?.()) || /expired/i.test(error.message())) {
      tokens.rejected(attempt.token); // the next token subscribes again
      return;
    }
    // Anything else (the SDK already retried network drops itself): again with the same token,
    // after a doubling, jittered wait; a refused token then shows up as the error above.
    const window = Math.min(RESUBSCRIBE_MAX_MS, RESUBSCRIBE_MIN_MS * 2 ** resubscribeFailures++);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => subscribeWith(attempt.token), window / 2 + Math.random() * (window / 2));
  }

  function subscribeWith(token) {
    if (stopped) return;
    clearTimeout(retryTimer);
    const attempt = {
      generation: ++newest,
      token,
      client: new TopicClient({
        configuration: Configurations.Browser.v1(),
        credentialProvider: CredentialProvider.fromDisposableToken(token),
      }),
      subscription: null,
    };
    attempt.client.subscribe(cache, topic, {
      onItem: deliver,
      onDiscontinuity: (d) => {
        // The topic's numbering moved back (a new sequence page): follow it, or nothing would pass.
        if (attempt.generation === newest && d.newSequenceNumber() <= lastSequence) lastSequence = d.newSequenceNumber() - 1;
      },
      onError: (e) => failed(attempt, e, 'subscription'),
    }).then((result) => {
      if (!(result instanceof TopicSubscribe.Subscription)) {
        failed(attempt, result, 'subscribe');
        return;
      }
      attempt.subscription = result;
      if (stopped || (live && live.generation > attempt.generation)) {
        close(attempt); // a newer token's subscription is live already: it wins
        return;
      }
      const previous = live;
      live = attempt;
      resubscribeFailures = 0;
      onState('live');
      if (previous) close(previous); // only now: until here it kept the messages coming
    });
  }

  tokens.subscribe(({ token }) => subscribeWith(token)); // the first token, then each new one
  return {
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      tokens.stop();
      if (live) close(live); // attempts still pending close themselves when they resolve
      live = null;
    },
  };
}
