// "Download (ZIP)" on the study page in headless Chromium (tests/e2e/test_web_study_zip.py):
// the page asks for a single-use link and the browser downloads the study's ZIP from it.
// Usage: node e2e/study-zip.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
const linkRequests = [];
page.on('response', (r) => {
  if (r.url().endsWith('/download-link')) {
    linkRequests.push({ status: r.status(), method: r.request().method(),
      hasToken: (r.request().headers().authorization ?? '').startsWith('Bearer ') });
  }
});
try {
  await page.goto(`${args.url}/signin`);
  await page.waitForSelector('html[data-ready="true"]');
  const banner = page.getByTestId('consent-banner');
  if (await banner.isVisible().catch(() => false)) await page.getByTestId('consent-reject').click();
  await page.getByLabel('Email').fill(args.email);
  await page.getByLabel('Password').fill(args.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');
  await page.goto(`${args.url}/studies/${args.studyId}`);
  const button = page.getByTestId('download-zip');
  await button.waitFor();
  const label = await button.innerText();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }),
    button.click()]);
  await download.saveAs(args.out);
  const pageUrl = page.url();
  await shot(page, 'study-zip-downloaded');
  console.log('RESULT ' + JSON.stringify({ label, url: download.url(),
    suggested: download.suggestedFilename(), failure: await download.failure(), pageUrl,
    linkRequests, errors }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  process.exitCode = 1;
  await shot(page, 'failure-study-zip').catch(() => {});
} finally {
  await browser.close();
}
