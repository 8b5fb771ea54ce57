// One page in headless Chromium, for tests/e2e/test_status_page.py: what a
// browser makes of it and every request it sent.
//
//   node page.mjs '{"url": "http://127.0.0.1:9901/", "screenshot": "/path/page.png",
//                   "styles": {".down": "color"}}'
//
// Opens <url> in a fresh context, waits for "load", saves a full-page
// screenshot to <screenshot>, and prints one JSON object on stdout: the main
// response's status and headers, the page title and text, the ids of its
// <section> elements, how many <script> elements it has, every request the
// page sent (URL, resource type), every failed one, console messages (a
// Content-Security-Policy violation shows up there), and for each
// selector of "styles" the computed value of the property named (so a test
// can see that the inline style sheet was applied).  Exits 0 when the page
// was loaded (whatever it was), 1 on a usage error or when Chromium did not
// start.  Chromium: "chromium" in the options, else $CHROMIUM, else
// /usr/bin/chromium; Playwright gives it a fresh profile.

import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps',
  '--disable-features=Translate,OptimizationHints,MediaRouter',
  '--metrics-recording-only', '--password-store=basic', '--use-mock-keychain',
];

let opts;
try {
  opts = JSON.parse(process.argv[2] || '');
  if (typeof opts.url !== 'string' || typeof opts.screenshot !== 'string') throw new Error('url and screenshot');
} catch (e) {
  process.stderr.write(`page.mjs: ${e.message}\nusage: node page.mjs '{"url": URL, "screenshot": PATH}'\n`);
  process.exit(1);
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: opts.chromium || process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, args: CHROMIUM_ARGS, timeout: 30000,
  });
} catch (e) {
  process.stderr.write(`page.mjs: Chromium did not start: ${e.message}\n`);
  process.exit(1);
}

const out = { chromium: browser.version(), requests: [], failed: [], console: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('request', (r) => out.requests.push({ url: r.url(), type: r.resourceType() }));
  page.on('requestfailed', (r) => out.failed.push({ url: r.url(), error: r.failure()?.errorText }));
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  const resp = await page.goto(opts.url, { waitUntil: 'load', timeout: 30000 });
  out.status = resp ? resp.status() : null;
  out.headers = resp ? resp.headers() : {};
  out.title = await page.title();
  out.text = await page.innerText('body');
  out.sections = await page.$$eval('section', (ss) => ss.map((s) => s.id));
  out.scripts = await page.$$eval('script', (ss) => ss.length);
  out.styles = {};
  for (const [selector, property] of Object.entries(opts.styles || {})) {
    out.styles[selector] = await page.$eval(selector, (el, p) => getComputedStyle(el)[p], property)
      .catch(() => null);
  }
  await page.screenshot({ path: opts.screenshot, fullPage: true });
  await context.close();
} finally {
  await browser.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + '\n');
