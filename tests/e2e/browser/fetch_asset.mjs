// One compressed script fetched by headless Chromium, driven by
// tests/e2e/test_compression.py.
//
//   node fetch_asset.mjs '{"page": "https://compress.test:8443/",
//                          "asset": "https://compress.test:8443/app.js",
//                          "args": ["--host-resolver-rules=MAP compress.test 127.0.0.1"]}'
//
// Opens <page> (certificate errors ignored: the test's local CA), then runs
// fetch(<asset>) in it, as a page's own script would, and prints one JSON
// object: the asset's status, its Content-Encoding as the page sees it (same
// origin: every header is visible), the SHA-256 of the text Chromium decoded,
// and the protocol it came over (nextHopProtocol: "h2" or "http/1.1").
// Exits 0 when it got that far, 1 otherwise (the error on stderr).
// Chromium: $CHROMIUM, else /usr/bin/chromium; "args": more switches.

import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps',
  '--disable-features=Translate,OptimizationHints,MediaRouter',
  '--metrics-recording-only', '--password-store=basic', '--use-mock-keychain',
];

const opts = JSON.parse(process.argv[2] || '{}');
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, args: CHROMIUM_ARGS.concat(opts.args || []),
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(opts.page);
  const out = await page.evaluate(async (url) => {
    const r = await fetch(url, { cache: 'no-store' });
    const text = await r.text();
    const entry = performance.getEntriesByName(url).pop();
    return {
      status: r.status,
      encoding: r.headers.get('content-encoding'),
      text,
      protocol: entry ? entry.nextHopProtocol : null,
    };
  }, opts.asset);
  // Hashed here: plain-HTTP pages have no crypto.subtle.
  out.sha256 = createHash('sha256').update(out.text, 'utf8').digest('hex');
  delete out.text;
  process.stdout.write(JSON.stringify(out) + '\n');
  await browser.close();
} catch (err) {
  process.stderr.write(`fetch_asset.mjs: ${err.stack || err}\n`);
  if (browser) await browser.close();
  process.exit(1);
}
