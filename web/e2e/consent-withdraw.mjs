// Withdrawing consent by clearing the localStorage value while signed in
// (tests/e2e/test_web_privacy_promises.py, issue 16 item 1): the privacy policy says clearing
// "pacs.tracking-consent" revokes consent, so after a grant, a cleared key and a reload the
// banner is shown, the key stays empty (never refilled from the server's ledger) and no
// analytics request leaves the page, also when the person moves to another page.
// Usage: node e2e/consent-withdraw.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();
const KEY = 'pacs.tracking-consent';

await runScript(args, 'consent-withdraw', async (browser) => {
  const { page, requests } = await newPage(browser);
  const analytic = () => requests.filter((r) => r.url.includes('/__/analytics')
    || r.url.includes('/api/privacy/analytics'));
  const consentPosts = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/privacy/consent') && r.request().method() === 'POST') consentPosts.push(r.status());
  });
  // Grant on the sign-in page, then sign in: the grant is mirrored to the ledger.
  await signIn(page, args.url, args.email, args.password, true);
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
  await screenshot(args, page, 'consent-withdrawn-by-clearing');
  const afterClear = analytic().slice(mark).map((r) => r.url);
  return { granted, consentPosts, sentWhileGranted, bannerAfterReload, storedAfterReload,
    bannerAfterNavigation, storedAfterNavigation, afterClear };
});
