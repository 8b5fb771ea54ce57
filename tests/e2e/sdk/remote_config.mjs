// Asks for a feature flag's remote config payload with the real posthog-node
// SDK and a personal API key, for tests/e2e/test_sdk.py: the SDK calls
// GET /api/projects/@current/feature_flags/<key>/remote_config with
// "Authorization: Bearer <personalApiKey>", a server-to-server API call that
// must pass the SAML gate without a session.
//
//   node remote_config.mjs '{"host": "http://127.0.0.1:8080", "apiKey": "phc_x",
//                            "personalApiKey": "phx_y", "flag": "my-flag"}'
//
// Prints one JSON line {"ok": true, "payload": ...} or {"ok": false, "errors": [...]}.
import { PostHog } from 'posthog-node';

const opts = JSON.parse(process.argv[2]);
const errors = [];
const client = new PostHog(opts.apiKey, {
  host: opts.host, personalApiKey: opts.personalApiKey, enableLocalEvaluation: false,
  flushAt: 100, flushInterval: 0, fetchRetryCount: 0,
});
client.on('error', (err) => errors.push(String(err && err.stack ? err.stack : err)));
let payload;
try {
  payload = await client.getRemoteConfigPayload(opts.flag);
} catch (err) {
  errors.push(`getRemoteConfigPayload: ${err && err.stack ? err.stack : err}`);
}
await client.shutdown();
console.log(JSON.stringify({ ok: errors.length === 0, payload: payload ?? null, errors }));
process.exit(errors.length === 0 ? 0 : 1);
