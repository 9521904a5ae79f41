// Live order updates for a page: tokens from the token vending machine, and a
// Momento topic subscription that moves to every new token. The README shows
// this file as it is; the browser test runs it.
import { createTokenSource } from './tvm-client.js';
import { Configurations, CredentialProvider, TopicClient, TopicSubscribe } from '@gomomento/sdk-web';

/**
 * Follows one topic until `stop()`.
 *
 * @param {object} o
 * @param {string} o.tokensUrl  `<OrderApiEndpoint>/tokens`; the output already starts with https://.
 * @param {string} o.topic  e.g. `orders-${sub}` for a signed-in customer.
 * @param {(value: string) => void} o.onItem  Called with each message published to the topic.
 * @param {string} [o.cache='pizza']
 * @param {() => (string | Promise<string>)} [o.idToken]  Signed-in callers: the user's Cognito ID token.
 * @param {(e: {status: number | null, message: string}) => void} [o.onError]  Token and subscription failures.
 */
export function followOrderUpdates({ tokensUrl, topic, onItem, cache = 'pizza', idToken, onError = console.warn }) {
  const tokens = createTokenSource(tokensUrl, { authorization: idToken, onError });
  let subscription;
  let stopped = false;
  tokens.subscribe(async ({ token }) => { // the first token, then each new one
    const topics = new TopicClient({
      configuration: Configurations.Browser.v1(),
      credentialProvider: CredentialProvider.fromDisposableToken(token),
    });
    const next = await topics.subscribe(cache, topic, {
      onItem: (item) => onItem(item.valueString()),
      onError: (e) => onError({ status: null, message: `subscription: ${e.message()}` }),
    });
    if (!(next instanceof TopicSubscribe.Subscription)) {
      onError({ status: null, message: `subscribe: ${next.message()}` });
      return; // the next token tries again
    }
    subscription?.unsubscribe();
    subscription = next;
    if (stopped) next.unsubscribe();
  });
  return {
    stop() {
      stopped = true;
      tokens.stop();
      subscription?.unsubscribe();
    },
  };
}
