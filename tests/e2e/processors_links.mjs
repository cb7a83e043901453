// The Processors & Subprocessors page's links (tests/e2e/test_web_processors_links.py): for
// each row, the processor's name and the address of every link in it, as a visitor's
// browser sees them. Usage: node ../tests/e2e/processors_links.mjs '<json args>'; prints
// "RESULT {json}".
import { newPage, runScript, scriptArgs } from '../../web/e2e/browser.mjs';

const args = scriptArgs();

await runScript(args, 'processors-links', async (browser) => {
  const { page, errors } = await newPage(browser);
  await page.goto(`${args.url}/processors`);
  await page.waitForSelector('table tbody tr');
  const rows = await page.$$eval('table tbody tr', (trs) => trs.map((tr) => ({
    name: tr.querySelector('th, td').textContent.trim(),
    links: [...tr.querySelectorAll('a')].map((a) => ({ text: a.textContent.trim(), href: a.href })),
  })));
  return { rows, errors };
});
