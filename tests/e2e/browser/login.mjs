// SAML logins in headless Chromium, driven by tests/e2e/test_saml_browser.py.
//
//   node login.mjs '{"url": "https://localhost:8443/insights?x=1",
//                    "username": "alice", "password": "secret",
//                    "logout": "https://localhost:8443/saml/logout",
//                    "websockets": ["wss://localhost:8443/ws"],
//                    "then": ["https://localhost:8081/"]}'
//   node login.mjs '{"runs": [{...one login as above...}, {...}], "args": [...]}'
//
// One login: opens <url> (a page behind Portcullis' SAML login), waits for
// the IdP's login form (tests/saml/pysaml2_idp.py --form: form#login with
// #username, #password, #submit; #error after a refusal), fills it in,
// submits, and lets the browser follow the IdP's auto-submitted HTTP-POST
// form to the ACS and Portcullis' redirect back.  It stops when the browser
// is on <url> again ("signed-in") or when the IdP shows its error
// ("refused"); with "ends", when it is on that URL instead (a sign-in whose
// redirect back lands elsewhere).  With "websockets", a signed-in page opens each of those
// WebSocket URLs and exchanges two messages ("websockets" in the output).
// With "then", a signed-in run then opens each of those URLs in the same
// page (same context, so with the session's cookies), one after the other:
// "then" in the output, one step each (URL, status, page text, protocol).
// After "then", "cookies_after_then" is the jar (with each value when the
// run has "cookie_values": true, for a test that replays them).
// With "again" (a regular expression), a signed-in run then opens once more
// each document URL it saw that matches ("again" in the output).
// With "signin": false, a run stops at the IdP's form (outcome "at-idp";
// "username" and "password" are not needed): where a page without a
// session sends the browser.
// With "logout", a signed-in run then opens that URL, and
// opens <url> once more to see where it lands.
//
// Several logins ("runs") share one Chromium (starting it is the slow part)
// but each gets a fresh browser context: no cookies are shared.  They run
// one after the other, in the order given.
//
// Prints one JSON object on stdout; for "runs", {"chromium", "runs": [...]}
// with one object per login: what the browser saw at each step (URL,
// status, page text, ms since start, the protocol the page came over:
// nextHopProtocol of the navigation, "h2" or "http/1.1"), every document response with its
// Set-Cookie lines, and the cookie jar (names and flags; values only as
// lengths), "ok" and "error".  Exits 0 when every login ran to its end
// (whatever it saw), 1 on a usage error or when Chromium did not start.
//
// Certificate trust comes from the environment: the caller points HOME at a
// folder whose .pki/nssdb trusts the test CA (or sets "ignoreHTTPSErrors").
// Chromium: "chromium" in the options, else $CHROMIUM, else
// /usr/bin/chromium; Playwright gives it a fresh profile.  "args": more
// Chromium switches (e.g. --host-resolver-rules to reach a host name at a
// test address).

import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps',
  '--disable-features=Translate,OptimizationHints,MediaRouter',
  '--metrics-recording-only', '--password-store=basic', '--use-mock-keychain',
];

const started = Date.now();

function usage(msg) {
  process.stderr.write(`login.mjs: ${msg}\nusage: node login.mjs '{"url": URL, "username": ` +
    `USER, "password": PASSWORD, ["logout": URL], ["timeout": ms], ["ignoreHTTPSErrors": ` +
    `bool], ["ends": URL], ["websockets": [URL, ...]], ["then": [URL, ...]], ` +
    `["signin": false]}'\n` +
    `       node login.mjs '{"runs": [LOGIN, ...], ["chromium": PATH], ["args": [ARG, ...]]}'\n`);
  process.exit(1);
}

let opts;
try {
  opts = JSON.parse(process.argv[2] ?? '');
} catch (e) {
  usage(`the argument is not JSON: ${e.message}`);
}
if (opts === null || typeof opts !== 'object') usage('the argument must be a JSON object');
const runs = Array.isArray(opts.runs) ? opts.runs : [opts];
if (runs.length === 0) usage('"runs" is empty');
runs.forEach((r, i) => {
  for (const key of r.signin === false ? ['url'] : ['url', 'username', 'password']) {
    if (typeof r[key] !== 'string') usage(`run ${i}: "${key}" (a string) is required`);
  }
  try {
    new URL(r.url);
  } catch (e) {
    usage(`run ${i}: "url" ${JSON.stringify(r.url)} is not a URL`);
  }
});

function pathAndQuery(u) {
  const x = new URL(u);
  return x.pathname + x.search;
}

// With <values>, each cookie's value too (a test that replays a cookie).
async function cookieJar(context, values) {
  return (await context.cookies()).map((c) => ({
    name: c.name, domain: c.domain, path: c.path, httpOnly: c.httpOnly, secure: c.secure,
    sameSite: c.sameSite, expires: c.expires, value_length: c.value.length,
    ...(values ? { value: c.value } : {}),
  }));
}

// Resolves with the name of the first condition met; rejects when none is.
function firstOf(conditions, timeout) {
  const racers = Object.entries(conditions).map(([name, p]) => p.then(() => name));
  racers.forEach((p) => p.catch(() => {})); // the losers may reject later
  return Promise.any(racers).catch((e) => {
    throw new Error(`none of ${Object.keys(conditions).join(', ')} within ${timeout} ms: ` +
      e.errors.map((x) => String(x.message || x).split('\n')[0]).join('; '));
  });
}

async function login(browser, run) {
  const timeout = run.timeout ?? 15000;
  const target = new URL(run.url).href;
  const ends = run.ends ? new URL(run.ends).href : target;
  const out = { ok: false, error: null, outcome: null, steps: [], documents: [], cookies: [] };
  const pending = [];
  let context;
  let page;

  // What the page shows now.
  async function snapshot(name, response) {
    const s = { step: name, ms: Date.now() - started, url: page.url(), path: null,
                status: response ? response.status() : null, title: null, text: null,
                idp_form: false, idp_error: null, protocol: null };
    try {
      s.path = pathAndQuery(s.url);
      s.title = await page.title();
      s.text = await page.evaluate(() => (document.body ? document.body.innerText : ''));
      s.protocol = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        return nav ? nav.nextHopProtocol : null;
      });
      s.idp_form = (await page.locator('form#login input#password').count()) > 0;
      if ((await page.locator('#error').count()) > 0) {
        s.idp_error = await page.locator('#error').innerText();
      }
    } catch (e) {
      s.snapshot_error = String(e.message || e);
    }
    out.steps.push(s);
    return s;
  }

  try {
    context = await browser.newContext({ ignoreHTTPSErrors: !!run.ignoreHTTPSErrors });
    page = await context.newPage();
    page.setDefaultTimeout(timeout);
    page.setDefaultNavigationTimeout(timeout);
    page.on('response', (r) => {
      if (r.request().resourceType() !== 'document') return;
      const doc = { method: r.request().method(), url: r.url(), status: r.status(),
                    set_cookie: [] };
      out.documents.push(doc);
      pending.push(r.headersArray().then((hs) => {
        doc.set_cookie = hs.filter((h) => h.name.toLowerCase() === 'set-cookie')
          .map((h) => h.value);
      }).catch(() => {}));
    });

    // 1. The protected page sends the browser to the IdP's form.
    const first = await page.goto(target, { waitUntil: 'load' });
    const landing = await snapshot('landing', first);
    if (!landing.idp_form) throw new Error(`no IdP login form at ${landing.url}`);
    if (run.signin === false) {
      out.outcome = 'at-idp';
      out.cookies = await cookieJar(context);
      out.ok = true;
      return out;
    }

    // 2. Sign in: the IdP answers with its auto-submitted form (then the ACS
    //    redirects to <url>) or shows its form again with an error.
    await page.fill('#username', run.username);
    await page.fill('#password', run.password);
    await page.click('#submit', { noWaitAfter: true });
    out.outcome = await firstOf({
      'signed-in': page.waitForURL(ends, { waitUntil: 'load' }),
      refused: page.locator('#error').waitFor({ state: 'attached' }),
    }, timeout);
    await page.waitForLoadState('load');
    await snapshot(out.outcome);
    out.cookies = await cookieJar(context);

    // 3. WebSockets from the signed-in page (the session cookie goes with
    //    the upgrade): each URL of "websockets" gets "hello", then
    //    "headers?" (the echo upstream answers with its handshake's headers).
    if (Array.isArray(run.websockets) && out.outcome === 'signed-in') {
      out.websockets = [];
      for (const u of run.websockets) {
        out.websockets.push(await page.evaluate((url) => new Promise((resolve) => {
          const got = [];
          const ws = new WebSocket(url);
          const timer = setTimeout(() => resolve({ url, ok: false, got, error: 'timeout' }), 10000);
          ws.onopen = () => ws.send('hello from chromium');
          ws.onmessage = (e) => {
            got.push(String(e.data));
            if (got.length === 1) {
              ws.send('headers?');
            } else {
              clearTimeout(timer);
              ws.close();
              resolve({ url, ok: true, got });
            }
          };
          ws.onerror = () => {
            clearTimeout(timer);
            resolve({ url, ok: false, got, error: 'error' });
          };
        }), u));
      }
    }

    // 4. More pages in the same context (the session's cookies go along).
    if (Array.isArray(run.then) && out.outcome === 'signed-in') {
      out.then = [];
      for (const u of run.then) {
        const r = await page.goto(u, { waitUntil: 'load' });
        out.then.push(await snapshot('then', r));
      }
      out.cookies_after_then = await cookieJar(context, !!run.cookie_values);
    }

    // 4b. Open again each document URL so far that matches "again" (a
    //     regular expression): what a replayed link gets in this browser.
    if (run.again && out.outcome === 'signed-in') {
      const rx = new RegExp(run.again);
      out.again = [];
      for (const u of out.documents.map((d) => d.url).filter((u) => rx.test(u))) {
        const r = await page.goto(u, { waitUntil: 'load' });
        out.again.push(await snapshot('again', r));
      }
    }

    // 5. Sign out, then open the page again.
    if (run.logout && out.outcome === 'signed-in') {
      const r = await page.goto(run.logout, { waitUntil: 'load' });
      await snapshot('logout', r);
      out.cookies_after_logout = await cookieJar(context);
      const again = await page.goto(target, { waitUntil: 'load' });
      await snapshot('revisit', again);
    }
    out.ok = true;
  } catch (e) {
    out.error = String(e.message || e);
    if (page) await snapshot('error');
  } finally {
    await Promise.all(pending);
    if (context) await context.close().catch(() => {});
  }
  return out;
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: opts.chromium || process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, args: CHROMIUM_ARGS.concat(Array.isArray(opts.args) ? opts.args : []),
    timeout: 30000,
  });
} catch (e) {
  process.stderr.write(`login.mjs: Chromium did not start: ${e.message}\n`);
  process.exit(1);
}
const result = { chromium: browser.version(), launch_ms: Date.now() - started, runs: [] };
try {
  for (const run of runs) result.runs.push(await login(browser, run));
} finally {
  await browser.close().catch(() => {});
}
const single = Array.isArray(opts.runs) ? result
  : { chromium: result.chromium, launch_ms: result.launch_ms, ...result.runs[0] };
process.stdout.write(JSON.stringify(single) + '\n');
