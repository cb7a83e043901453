// "Download (ZIP)" on the study page in headless Chromium (tests/e2e/test_web_study_zip.py):
// the page asks for a single-use link and the browser downloads the study's ZIP from it.
// Usage: node e2e/study-zip.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();

await runScript(args, 'study-zip', async (browser) => {
  const { page, errors: allErrors } = await newPage(browser, { acceptDownloads: true });
  const linkRequests = [];
  page.on('response', (r) => {
    if (r.url().endsWith('/download-link')) {
      linkRequests.push({ status: r.status(), method: r.request().method(),
        hasToken: (r.request().headers().authorization ?? '').startsWith('Bearer ') });
    }
  });
  await signIn(page, args.url, args.email, args.password);
  await page.goto(`${args.url}/studies/${args.studyId}`);
  const button = page.getByTestId('download-zip');
  await button.waitFor();
  const label = await button.innerText();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }),
    button.click()]);
  await download.saveAs(args.out);
  const pageUrl = page.url();
  await screenshot(args, page, 'study-zip-downloaded');
  const errors = allErrors.filter((e) => e.startsWith('pageerror'));
  return { label, url: download.url(), suggested: download.suggestedFilename(),
    failure: await download.failure(), pageUrl, linkRequests, errors };
});
