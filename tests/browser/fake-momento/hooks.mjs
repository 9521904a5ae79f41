// Module resolution hook for the Node tests of web/order-updates.js: the bare name
// '@gomomento/sdk-web' resolves to the scripted stand-in next to this file, so the
// file is tested as it is, with no bundler and no network.
export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@gomomento/sdk-web') {
    return { url: new URL('./sdk-web.mjs', import.meta.url).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
