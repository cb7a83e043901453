// Revoking analytics consent through the footer's "Cookie preferences"
// (tests/e2e/test_web_consent_revoke.py): signed in with analytics accepted, the person
// reopens the banner from the footer and rejects; from then on no analytic request leaves
// the page, across navigation and a reload. Every answer of 400 or more is reported. Usage: node ../tests/e2e/consent_revoke.mjs
// '<json args>'; prints "RESULT {json}".
import { newPage, runScript, scriptArgs, signIn } from '../../web/e2e/browser.mjs';

const args = scriptArgs();
const ANALYTICS = ['/__/analytics', '/api/privacy/analytics'];

await runScript(args, 'consent-revoke', async (browser) => {
  const { page, requests, errors } = await newPage(browser);
  const refused = [];
  page.on('response', async (r) => {
    if (r.status() >= 400) {
      refused.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()} ${await r.text().catch(() => '')}`);
    }
  });
  const analytic = () => requests.filter((r) => ANALYTICS.some((a) => r.url.includes(a))).length;
  await signIn(page, args.url, args.email, args.password, true);
  // Accepted: the studies page and a visit to the policy send events.
  await page.locator('footer').getByRole('link', { name: 'Privacy policy' }).click();
  await page.waitForURL('**/privacy-policy');
  await page.waitForTimeout(1500);
  const whileAccepted = analytic();
  // Revoke through the footer.
  await page.getByTestId('cookie-preferences').click();
  await page.getByTestId('consent-reject').click();
  const stored = await page.evaluate(() => localStorage.getItem('pacs.tracking-consent'));
  const atRevocation = analytic();
  await page.locator('footer').getByRole('link', { name: 'Processors' }).click();
  await page.waitForURL('**/processors');
  await page.goto(`${args.url}/studies`);
  await page.waitForSelector('[data-testid=study-row], .empty');
  await page.reload();
  await page.waitForSelector('[data-testid=study-row], .empty');
  await page.waitForTimeout(1500);
  const bannerAfterReload = await page.getByTestId('consent-banner').isVisible();
  return { whileAccepted, atRevocation, afterRevocation: analytic(), stored, bannerAfterReload,
    errors, refused };
});
