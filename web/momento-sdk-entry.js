// The names index.html and order-updates.js take from Momento's web SDK, bundled into
// vendor/momento-sdk-web.js by `make web`. The SDK is CommonJS, so each name is listed
// (an `export *` would export nothing): add any other name your page imports here.
export {
  Configurations,
  CredentialProvider,
  MomentoErrorCode,
  TopicClient,
  TopicDiscontinuity,
  TopicHeartbeat,
  TopicItem,
  TopicPublish,
  TopicSubscribe,
} from '@gomomento/sdk-web';
