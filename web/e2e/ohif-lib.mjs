// What the OHIF browser scripts (ohif.mjs, ohif-measure.mjs, ohif-share.mjs) share beyond
// browser.mjs: a browser with WebGL, OHIF's viewport canvas and its pixels, the first-visit
// tour, and a record of the requests a browser context made.
import { chromium } from 'playwright-core';
import { join } from 'node:path';
import { CHROMIUM_ARGS, log, scriptArgs, signIn as signInAs } from './browser.mjs';

export { log };
export const args = scriptArgs();
export const shot = (page, name) => page.screenshot({ path: join(args.artifacts, `${name}.png`) });

/** Headless Debian Chromium with software WebGL (OHIF's viewports are WebGL, which
 *  browser.mjs' `--disable-gpu` would turn off). */
export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true, args: [...CHROMIUM_ARGS.filter((a) => a !== '--disable-gpu'),
      '--use-angle=swiftshader', '--enable-unsafe-swiftshader'] });
}

/** Sign in as the script's user (args.email, args.password) and wait for the studies list. */
export const signIn = (page) => signInAs(page, args.url, args.email, args.password);

/** Pixel statistics of the canvas of OHIF's (first) viewport, not of thumbnails or the
 *  offscreen canvases they are drawn with (null: no viewport yet). Runs in the page. */
export function canvasStats() {
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

/** Wait until the viewport shows an image (lit, more than a few grey values). */
export async function waitForImage(page, timeoutMs = args.renderTimeoutMs ?? 90_000) {
  const until = Date.now() + timeoutMs;
  let stats = null;
  while (Date.now() < until) {
    stats = await page.evaluate(canvasStats).catch(() => null);
    if (stats && stats.lit > stats.pixels * 0.01 && stats.distinct > 16) return stats;
    await page.waitForTimeout(500);
  }
  return stats;
}

/** OHIF's first-visit tour (shepherd.js) lies over the viewport and takes the wheel. */
export async function skipTour(page) {
  const skip = page.getByText('Skip all', { exact: true });
  if (await skip.isVisible().catch(() => false)) {
    await skip.click();
    return true;
  }
  return false;
}

/** The viewport canvas' box on the page. */
/** Open the study's page and follow its "Open in OHIF" link to OHIF's viewer; returns the
 *  link's href. */
export async function openFromStudyPage(page, studyId = args.studyId) {
  await page.goto(`${args.url}/studies/${studyId}`);
  const link = page.getByTestId('open-ohif');
  const href = await link.getAttribute('href');
  await link.click();
  await page.waitForURL('**/ohif/viewer**');
  return href;
}

export function viewportBox(page) {
  return page.locator('[data-viewportid] canvas.cornerstone-canvas').first().boundingBox();
}

/** Scroll the viewport by one wheel step; the canvas' pixels after it. */
export async function wheel(page) {
  const box = await viewportBox(page);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, 120);
  await page.waitForTimeout(1500);
  return page.evaluate(canvasStats);
}

/** Record every request a browser context makes: its URL, and for /dicomweb/ answers the
 *  path, status and which credential went with it (a bearer, a share); with `bodies`, the text of
 *  JSON answers too (QIDO results and metadata, not frames). */
export function recordRequests(context, { bodies = false } = {}) {
  const urls = [];
  const dicomweb = [];
  const reading = [];
  context.on('request', (r) => urls.push(r.url()));
  context.on('response', (r) => {
    const url = new URL(r.url());
    if (!url.pathname.startsWith('/dicomweb/')) return;
    const headers = r.request().headers();
    const auth = headers.authorization ?? '';
    const entry = { path: url.pathname, query: url.search, status: r.status(),
      bearer: auth.startsWith('Bearer ') && auth.length > 40,
      share: /^Share \S+ \S+$/.test(auth) };
    dicomweb.push(entry);
    if (bodies && /json/.test(r.headers()['content-type'] ?? '')) {
      reading.push(r.text().then((t) => { entry.body = t; }, () => { entry.body = null; }));
    }
  });
  /** Wait until every body asked for so far is read. */
  const settled = () => Promise.all(reading);
  return { urls, dicomweb, settled };
}

/** The page's console errors, page errors and Content-Security-Policy reports. */
export function watchConsole(page) {
  const errors = [];
  const csp = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content Security Policy/i.test(text)) csp.push(text.slice(0, 300));
    else if (m.type() === 'error') errors.push(text.slice(0, 300));
  });
  return { errors, csp };
}

/** Print the result line pytest reads (see tests/e2e/webstack.py's run_node). */
export function report(result) {
  log('done');
  console.log(`RESULT ${JSON.stringify(result)}`);
}
