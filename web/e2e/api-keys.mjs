// The Privacy centre's API keys in headless Chromium (tests/e2e/test_web_api_keys.py): a key
// created on a fresh sign-in is shown once, opens /dicomweb from the page, is gone from the
// page after a reload, and is refused once revoked from its row.
// Usage: node e2e/api-keys.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

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

// A DICOMweb search from the page with the key as the bearer (the browser's own fetch).
const search = (page, key) => page.evaluate(async (k) => {
  const r = await fetch('/dicomweb/studies', { headers: { Authorization: `Bearer ${k}`,
    Accept: 'application/dicom+json' } });
  return { status: r.status, body: await r.text() };
}, key);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
try {
  await signIn(page);
  await page.getByRole('link', { name: 'Privacy', exact: true }).click();
  await page.getByTestId('key-name').fill(args.keyName);
  await page.getByTestId('key-scope').selectOption('read');
  await page.getByTestId('key-days').fill('30');
  await page.getByTestId('key-create').click();
  await page.getByTestId('key-created').waitFor();
  const key = await page.getByTestId('key-value').inputValue();
  const row = page.locator('[data-testid=key-row]', { hasText: args.keyName });
  await row.waitFor();
  const created = { status: await row.getAttribute('data-status'), text: await row.innerText() };
  await shot(page, 'api-keys-1-created');
  const withKey = await search(page, key);

  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await row.waitFor();
  const keyInPageAfterReload = (await page.content()).includes(key);
  const afterUse = await row.innerText();
  await row.getByTestId('key-revoke').click();
  await page.locator('[data-testid=key-row][data-status=revoked]', { hasText: args.keyName }).waitFor();
  await shot(page, 'api-keys-2-revoked');
  const revoked = await search(page, key);
  console.log('RESULT ' + JSON.stringify({ key, created, withKey, keyInPageAfterReload, afterUse,
    revoked, errors }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  process.exitCode = 1;
  await shot(page, 'failure-api-keys').catch(() => {});
  console.error((await page.locator('body').innerText().catch(() => '')).slice(0, 3000));
} finally {
  await browser.close();
}
