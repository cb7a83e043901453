// The Processors page as a visitor sees it (tests/e2e/test_web_privacy_promises.py, issue 16
// item 5): the rows of its table, to compare with the services the deploy plan enables.
// Usage: node e2e/processors.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';

const args = JSON.parse(process.argv[2] ?? '{}');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
try {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(`${args.url}/processors`);
  await page.waitForSelector('table tbody tr');
  const rows = await page.$$eval('table tbody tr', (trs) => trs.map((tr) =>
    [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim())));
  console.log('RESULT ' + JSON.stringify({ rows }));
} catch (err) {
  console.error(err?.stack ?? String(err));
  process.exitCode = 1;
} finally {
  await browser.close();
}
