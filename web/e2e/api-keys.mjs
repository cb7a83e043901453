// The Privacy centre's API keys in headless Chromium (tests/e2e/test_web_api_keys.py): a key
// created on a fresh sign-in is shown once, opens /dicomweb from the page, is gone from the
// page after a reload, and is refused once revoked from its row.
// Usage: node e2e/api-keys.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();

// A DICOMweb search from the page with the key as the bearer (the browser's own fetch).
const search = (page, key) => page.evaluate(async (k) => {
  const r = await fetch('/dicomweb/studies', { headers: { Authorization: `Bearer ${k}`,
    Accept: 'application/dicom+json' } });
  return { status: r.status, body: await r.text() };
}, key);

await runScript(args, 'api-keys', async (browser) => {
  const { page, errors: allErrors } = await newPage(browser);
  await signIn(page, args.url, args.email, args.password);
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
  await screenshot(args, page, 'api-keys-1-created');
  const withKey = await search(page, key);

  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await row.waitFor();
  const keyInPageAfterReload = (await page.content()).includes(key);
  const afterUse = await row.innerText();
  await row.getByTestId('key-revoke').click();
  await page.locator('[data-testid=key-row][data-status=revoked]', { hasText: args.keyName }).waitFor();
  await screenshot(args, page, 'api-keys-2-revoked');
  const revoked = await search(page, key);
  const errors = allErrors.filter((e) => e.startsWith('pageerror'));
  return { key, created, withKey, keyInPageAfterReload, afterUse, revoked, errors };
});
