// What the client page takes from Momento's web SDK (bundled by esbuild at test start).
export { CredentialProvider, TopicClient, TopicSubscribe, Configurations, MomentoErrorCode } from '@gomomento/sdk-web';
