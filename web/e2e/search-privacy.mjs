// Search filters stay out of URLs (tests/e2e/test_web_privacy_promises.py, issue 16 item 3):
// a search by patient name and ID is sent in the body of POST /api/studies/search, the page's
// address stays /studies (no names in browser history), Back restores the search, and an old
// bookmarked /studies?name=… drops its filters from the address bar without using them.
// Usage: node e2e/search-privacy.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();

await runScript(args, 'search-privacy', async (browser) => {
  const { page, requests } = await newPage(browser, {}, { bodies: true });
  const addresses = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) addresses.push(f.url()); });
  const rows = () => page.$$eval('[data-testid=study-row]', (els) => els.map((e) => e.dataset.studyId));
  await signIn(page, args.url, args.email, args.password);
  await page.waitForSelector('[data-testid=study-row]');
  const all = await rows();
  // Search by name and ID.
  await page.getByLabel('Patient name').fill(args.name);
  await page.getByLabel('Patient ID').fill(args.patientId);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=study-row]').length === n,
    1, { timeout: 30_000 });
  const found = await rows();
  const urlAfterSearch = page.url();
  const searches = requests.filter((r) => r.url.includes('/api/studies/search'))
    .map((r) => ({ method: r.method, url: r.url, body: r.body }));
  // Away and back: the search comes back from memory, the address stays clean.
  await page.getByRole('link', { name: 'Privacy', exact: true }).click();
  await page.waitForURL('**/privacy');
  await page.goBack();
  await page.waitForURL(/\/studies$/);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=study-row]').length === n,
    1, { timeout: 30_000 });
  const afterBack = { rows: await rows(), name: await page.getByLabel('Patient name').inputValue() };
  // A bookmark from before: its filters leave the address bar and are not used.
  await page.goto(`${args.url}/studies?name=${encodeURIComponent(args.name)}&patient_id=${encodeURIComponent(args.patientId)}`);
  await page.waitForSelector('[data-testid=study-row]');
  await page.waitForTimeout(500);
  const bookmark = { url: page.url(), rows: await rows(), name: await page.getByLabel('Patient name').inputValue() };
  await screenshot(args, page, 'search-privacy');
  const bookmarked = addresses.filter((a) => a.includes('?')).length;
  const sentWithFilters = requests.filter((r) => !r.url.startsWith(`${args.url}/studies?`))
    .map((r) => r.url).filter((u) => /[?&](name|patient_id)=/.test(u)
      || u.toLowerCase().includes(args.patientId.toLowerCase()));
  const histAddresses = addresses.filter((a) => !a.includes('/studies?'));
  return { all, found, urlAfterSearch, searches, afterBack, bookmark, bookmarked, sentWithFilters,
    addresses: histAddresses };
});
