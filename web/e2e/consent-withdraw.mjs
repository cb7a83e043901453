// Withdrawing consent by clearing the localStorage value while signed in
// (tests/e2e/test_web_privacy_promises.py, issue 16 item 1): the privacy policy says clearing
// "pacs.tracking-consent" revokes consent, so after a grant, a cleared key and a reload the
// banner is shown, the key stays empty (never refilled from the server's ledger) and no
// analytics request leaves the page, also when the person moves to another page.
// Usage: node e2e/consent-withdraw.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const KEY = 'pacs.tracking-consent';

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const requests = [];
page.on('request', (r) => requests.push({ url: r.url(), method: r.method() }));
const analytic = () => requests.filter((r) => r.url.includes('/__/analytics')
  || r.url.includes('/api/privacy/analytics'));
const consentPosts = [];
page.on('response', (r) => {
  if (r.url().includes('/api/privacy/consent') && r.request().method() === 'POST') consentPosts.push(r.status());
});
try {
  // Grant on the sign-in page, then sign in: the grant is mirrored to the ledger.
  await page.goto(`${args.url}/signin`);
  await page.waitForSelector('html[data-ready="true"]');
  await page.getByTestId('consent-accept').click();
  await page.getByLabel('Email').fill(args.email);
  await page.getByLabel('Password').fill(args.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');
  for (let i = 0; i < 60 && consentPosts.length === 0; i++) await page.waitForTimeout(250);
  const granted = await page.evaluate((k) => localStorage.getItem(k), KEY);
  const sentWhileGranted = analytic().length;
  // Withdraw the way the policy says: clear the value, reload.
  await page.evaluate((k) => localStorage.removeItem(k), KEY);
  const mark = analytic().length;
  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await page.getByTestId('user-email').waitFor();
  await page.waitForTimeout(2000);
  const bannerAfterReload = await page.getByTestId('consent-banner').isVisible();
  const storedAfterReload = await page.evaluate((k) => localStorage.getItem(k), KEY);
  // Moving around sends page views only with consent.
  await page.getByRole('link', { name: 'Privacy', exact: true }).click();
  await page.waitForURL('**/privacy');
  await page.waitForTimeout(1500);
  const bannerAfterNavigation = await page.getByTestId('consent-banner').isVisible();
  const storedAfterNavigation = await page.evaluate((k) => localStorage.getItem(k), KEY);
  await shot(page, 'consent-withdrawn-by-clearing');
  const afterClear = analytic().slice(mark).map((r) => r.url);
  console.log('RESULT ' + JSON.stringify({ granted, consentPosts, sentWhileGranted,
    bannerAfterReload, storedAfterReload, bannerAfterNavigation, storedAfterNavigation,
    afterClear }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  await shot(page, 'failure-consent-withdraw').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
