// The export's download link in headless Chromium (tests/e2e/test_web_export_link.py):
// a link is minted when the export just requested is ready, and a later download, once the
// sign-in is no longer recent, asks for the password again before it starts.
// Usage: node e2e/export-link.mjs '<json args>'; prints "RESULT {json}" on success.
import { log, newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();
const shot = (page, name, fullPage = true) => screenshot(args, page, name, fullPage);

async function saveDownload(page, click, path) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), click()]);
  await download.saveAs(path);
  return { url: download.url(), failure: await download.failure() };
}

await runScript(args, 'export-link', async (browser) => {
  const { page, errors: allErrors } = await newPage(browser, { acceptDownloads: true });
  const minted = [];
  page.on('response', (r) => {
    if (r.url().endsWith('/download') && r.request().method() === 'POST') minted.push(r.status());
  });
  await signIn(page, args.url, args.email, args.password);
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
  const errors = allErrors.filter((e) => e.startsWith('pageerror'));
  return { panelText, firstHref, first, second, signatureInPage, rowText, refusedFirst, minted,
    errors };
});
