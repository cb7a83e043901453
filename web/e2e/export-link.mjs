// The export's download link in headless Chromium (tests/e2e/test_web_export_link.py):
// a link is minted when the export just requested is ready, and a later download, once the
// sign-in is no longer recent, asks for the password again before it starts.
// Usage: node e2e/export-link.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name, fullPage = true) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage });
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

async function saveDownload(page, click, path) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), click()]);
  await download.saveAs(path);
  return { url: download.url(), failure: await download.failure() };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
const minted = [];
page.on('response', (r) => {
  if (r.url().endsWith('/download') && r.request().method() === 'POST') minted.push(r.status());
});
try {
  await signIn(page);
  const signedInAt = Date.now();
  await page.getByRole('link', { name: 'Privacy', exact: true }).click();
  await page.getByTestId('export-start').click();
  // The export just requested, on a recent sign-in: its link is minted when it is ready.
  await page.getByTestId('export-link').waitFor({ timeout: 120_000 });
  const panelText = await page.getByTestId('export-status').innerText();
  const firstHref = await page.getByTestId('export-link').getAttribute('href');
  await shot(page, 'export-link-1-ready');
  const first = await saveDownload(page, () => page.getByTestId('export-link').click(), args.firstOut);
  log('first download', first.failure ?? 'ok');

  // Wait until the sign-in is no longer recent (its auth_time is before signedInAt).
  const staleAt = signedInAt + (args.recentSeconds + 2) * 1000;
  await page.waitForTimeout(Math.max(0, staleAt - Date.now()));
  await page.reload();
  const row = page.locator('[data-testid=request-row][data-type=export][data-status=completed]');
  await row.waitFor();
  const html = await page.content();
  const signatureInPage = html.includes('X-Goog-Signature') || html.includes('X-Goog-Credential');
  const rowText = await row.innerText();
  const mintedBefore = minted.length;
  await row.getByTestId('export-download').click();
  await page.getByTestId('reauth-password').waitFor();
  const refusedFirst = minted.slice(mintedBefore);
  await page.getByTestId('reauth-password').fill(args.password);
  await shot(page, 'export-link-2-reauth', false);
  const second = await saveDownload(page, () => page.getByTestId('reauth-go').click(), args.secondOut);
  await shot(page, 'export-link-3-downloaded');
  console.log('RESULT ' + JSON.stringify({ panelText, firstHref, first, second, signatureInPage,
    rowText, refusedFirst, minted, errors }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  process.exitCode = 1;
  await shot(page, 'failure-export-link').catch(() => {});
  console.error((await page.locator('body').innerText().catch(() => '')).slice(0, 3000));
} finally {
  await browser.close();
}
