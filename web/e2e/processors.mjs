// The Processors page as a visitor sees it (tests/e2e/test_web_privacy_promises.py, issue 16
// item 5): the rows of its table, to compare with the services the deploy plan enables.
// Usage: node e2e/processors.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, scriptArgs } from './browser.mjs';

const args = scriptArgs();
await runScript(args, 'processors', async (browser) => {
  const { page } = await newPage(browser);
  await page.goto(`${args.url}/processors`);
  await page.waitForSelector('table tbody tr');
  const rows = await page.$$eval('table tbody tr', (trs) => trs.map((tr) =>
    [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim())));
  return { rows };
});
