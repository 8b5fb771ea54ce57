// Sends events with the real posthog-node SDK, for tests/e2e/test_sdk.py.
//
//   node send.mjs '{"host": "http://127.0.0.1:8080", "apiKey": "phc_x",
//                   "distinctId": "u1", "events": [{"event": "e", "properties": {}}],
//                   "hostHeader": "app.test", "cookie": "a=b"}'
//
// With "hostHeader" the SDK's requests go through a fetch built on node:http
// that sends that Host header (and "cookie" as a Cookie header), so a path on
// another site of the proxy (/ingest on the app domain) is reachable from
// 127.0.0.1.  Without it the SDK uses Node's own fetch.  Prints one JSON line
// {"ok": true} or {"ok": false, "errors": [...]}; exit code 0 or 1.
import http from 'node:http';
import { PostHog } from 'posthog-node';

const opts = JSON.parse(process.argv[2]);

async function bodyBytes(body) {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (typeof Blob !== 'undefined' && body instanceof Blob) return Buffer.from(await body.arrayBuffer());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new Error(`unsupported body type ${Object.prototype.toString.call(body)}`);
}

function hostFetch(hostHeader, cookie) {
  return async (url, options) => {
    const u = new URL(url);
    const body = await bodyBytes(options.body);
    const headers = { ...options.headers, Host: hostHeader, 'Content-Length': String(body.length) };
    if (cookie) headers.Cookie = cookie;
    return new Promise((resolve, reject) => {
      const req = http.request({
        hostname: u.hostname, port: u.port, path: u.pathname + u.search,
        method: options.method, headers,
      }, (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({
            status: res.statusCode,
            text: async () => text,
            json: async () => JSON.parse(text),
            headers: { get: (name) => res.headers[name.toLowerCase()] ?? null },
          });
        });
      });
      req.on('error', reject);
      if (options.signal) options.signal.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.end(body);
    });
  };
}

const errors = [];
const clientOptions = { host: opts.host, flushAt: 100, flushInterval: 0, fetchRetryCount: 0 };
if (opts.hostHeader) clientOptions.fetch = hostFetch(opts.hostHeader, opts.cookie);
const client = new PostHog(opts.apiKey, clientOptions);
client.on('error', (err) => errors.push(String(err && err.stack ? err.stack : err)));

for (const e of opts.events) {
  client.capture({ distinctId: opts.distinctId, event: e.event, properties: e.properties });
}
try {
  await client.flush();
} catch (err) {
  errors.push(`flush: ${err && err.stack ? err.stack : err}`);
}
await client.shutdown();
console.log(JSON.stringify({ ok: errors.length === 0, errors }));
process.exit(errors.length === 0 ? 0 : 1);
