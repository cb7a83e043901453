// The colour preview scenario of tests/e2e/test_web_colour_preview.py, in headless Chromium
// (Debian's, driven by web/node_modules/playwright-core; run with cwd web/).
// Usage: node ../tests/e2e/colour_preview.mjs '<json args>'; prints "RESULT {json}".
// Signs in, opens the studies list and the viewer of each colour study, and reports every
// preview image the page shows: where it points, whether it loaded, its natural size.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(join(process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const args = JSON.parse(process.argv[2] ?? '{}');
mkdirSync(args.artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(args.artifacts, `${name}.png`), fullPage: true });

/** Every loaded <img> under `selector`: src, complete, natural size. */
const images = (page, selector) => page.$$eval(selector, (imgs) => imgs.map((i) => ({
  src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight })));

/** Wait until `box` shows its outcome: an image that finished loading (or failed), or a
 *  non-empty "no preview" placeholder (no URL in the manifest); report its images. */
async function settled(page, box) {
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    if (!el) return false;
    const imgs = [...el.querySelectorAll('img')];
    if (imgs.length) return imgs.every((i) => i.complete);
    return (el.querySelector('.no-preview')?.textContent ?? '') !== '';
  }, box, { timeout: 60_000 });
  return images(page, `${box} img`);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
try {
  await page.goto(`${args.url}/signin`);
  await page.waitForSelector('html[data-ready="true"]');
  const banner = page.getByTestId('consent-banner');
  if (await banner.isVisible().catch(() => false)) await page.getByTestId('consent-reject').click();
  await page.getByLabel('Email').fill(args.email);
  await page.getByLabel('Password').fill(args.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');

  const result = { list: {}, viewer: {}, errors };
  for (const id of args.studies) {
    const box = `.thumb[data-study="${id}"]`;
    await page.locator(box).scrollIntoViewIfNeeded();
    result.list[id] = await settled(page, box);
  }
  await shot(page, 'colour-preview-studies');
  for (const id of args.studies) {
    await page.goto(`${args.url}/viewer/${id}`);
    await page.waitForSelector('.series-thumb');
    result.viewer[id] = await settled(page, '.series-thumb');
    await shot(page, `colour-preview-viewer-${id.slice(0, 8)}`);
  }
  console.log('RESULT ' + JSON.stringify(result));
} catch (err) {
  console.error(err?.stack ?? String(err));
  await shot(page, 'colour-preview-failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
