// The OHIF Viewer under /ohif/ in headless Chromium (tests/e2e/test_ohif.py): sign in, open a
// study's page, "Open in OHIF", and watch the viewer load from this site's DICOMweb with the
// session's token. Collects what it sees (every /dicomweb request with its status and whether
// it carried the bearer header, CSP violations, page errors, the viewport canvas' pixels
// before and after the wheel) and leaves the verdict to pytest.
// Usage: node e2e/ohif.mjs '<json args>'; prints "RESULT {json}".
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const FORGED = 'forged-e2e-token';
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

async function signIn(page) {
  await page.goto(`${args.url}/signin`);
  await page.waitForSelector('html[data-ready="true"]');
  const banner = page.getByTestId('consent-banner');
  if (await banner.isVisible().catch(() => false)) await page.getByTestId('consent-reject').click();
  await page.getByLabel('Email').fill(args.email);
  await page.getByLabel('Password').fill(args.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');
}

/** Pixel statistics of the canvas of OHIF's (first) viewport, not of thumbnails or the
 *  offscreen canvases they are drawn with (null: no viewport yet). */
function canvasStats() {
  const c = [...document.querySelectorAll('[data-viewportid] canvas.cornerstone-canvas')]
    .find((x) => x.getBoundingClientRect().width > 64 && x.width > 64 && x.height > 64);
  if (!c) return null;
  const probe = document.createElement('canvas');
  probe.width = c.width;
  probe.height = c.height;
  const ctx = probe.getContext('2d');
  ctx.drawImage(c, 0, 0);
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  const values = new Set();
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] + data[i + 1] + data[i + 2];
    if (v > 30) lit += 1;
    values.add(v);
    sum = (sum * 31 + v) % 1_000_000_007;
  }
  return { width: c.width, height: c.height, lit, distinct: values.size, checksum: sum,
    pixels: data.length / 4 };
}

async function waitForImage(page, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let stats = null;
  while (Date.now() < until) {
    stats = await page.evaluate(canvasStats).catch(() => null);
    if (stats && stats.lit > stats.pixels * 0.01 && stats.distinct > 16) return stats;
    await page.waitForTimeout(500);
  }
  return stats;
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--no-first-run', '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader', '--disable-background-networking', '--disable-component-update',
    '--disable-sync'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
const csp = [];
const dicomweb = [];
const urls = [];
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
page.on('console', (m) => {
  const text = m.text();
  if (/Content Security Policy/i.test(text)) csp.push(text.slice(0, 300));
  else if (m.type() === 'error') errors.push(text.slice(0, 300));
});
// Requests of the viewer's document (and its workers), not of the study page before it.
page.on('request', (r) => {
  let from = '';
  try { from = r.frame().url(); } catch { from = r.url(); }
  if (from.includes('/ohif/') || r.url().includes('/ohif/')) urls.push(r.url());
});
page.on('response', (r) => {
  const url = new URL(r.url());
  if (!url.pathname.startsWith('/dicomweb/')) return;
  const auth = r.request().headers().authorization ?? '';
  dicomweb.push({ path: url.pathname, query: url.search, status: r.status(),
    bearer: auth.startsWith('Bearer ') && auth.length > 40, forged: auth.includes(FORGED) });
});
const result = { errors, csp, dicomweb };
try {
  // Without a session the viewer sends nobody anywhere but to sign-in, and asks DICOMweb
  // nothing.
  const anonymous = await browser.newContext();
  const stranger = await anonymous.newPage();
  const asked = [];
  stranger.on('request', (r) => { if (r.url().includes('/dicomweb/')) asked.push(r.url()); });
  await stranger.goto(`${args.url}/ohif/viewer?StudyInstanceUIDs=1.2.3`);
  await stranger.waitForURL('**/signin?next=**');
  result.anonymous = { url: stranger.url(), dicomweb: asked.length };
  await anonymous.close();

  await signIn(page);
  await page.goto(`${args.url}/studies/${args.studyId}`);
  const link = page.getByTestId('open-ohif');
  result.href = await link.getAttribute('href');
  await link.click();
  await page.waitForURL('**/ohif/viewer**');
  result.crossOriginIsolated = await page.evaluate(() => window.crossOriginIsolated);
  result.first = await waitForImage(page, args.renderTimeoutMs ?? 90_000);
  await shot(page, 'ohif-1-viewer');
  // OHIF's first-visit tour (shepherd.js) lies over the viewport and takes the wheel.
  const skip = page.getByText('Skip all', { exact: true });
  if (await skip.isVisible().catch(() => false)) {
    result.tourShown = true;
    await skip.click();
  }
  if (result.first && args.wheel) {
    const box = await page.locator('[data-viewportid] canvas.cornerstone-canvas').first().boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, 120);
    await page.waitForTimeout(1500);
    result.afterWheel = await page.evaluate(canvasStats);
    await shot(page, 'ohif-2-wheel');
  }
  result.url = page.url();
  result.tokenInUrl = urls.some((u) => /[?&](token|access_token|id_token)=/i.test(u));
  // A `token` in the viewer's URL is dropped before OHIF reads it: the session's token stays
  // the bearer.
  const before = dicomweb.length;
  await page.goto(`${args.url}${result.href}&token=${FORGED}`);
  result.forgedFirst = await waitForImage(page, args.renderTimeoutMs ?? 90_000);
  result.forged = { url: page.url(), requests: dicomweb.length - before,
    forgedBearer: dicomweb.slice(before).filter((r) => r.forged).length,
    bearer: dicomweb.slice(before).filter((r) => r.bearer).length };
} catch (err) {
  result.failure = String(err).slice(0, 500);
  await shot(page, 'ohif-failure').catch(() => undefined);
}
result.requestHosts = [...new Set(urls.map((u) => new URL(u).host))];
log('done');
console.log(`RESULT ${JSON.stringify(result)}`);
await browser.close();
