// A folder of small DICOM files through the web client's folder picker, in headless
// Chromium (tests/e2e/test_web_folder_upload.py): every file is started and sent, and rows
// turn done with their results as the server processes them (the first args.firstDone, or
// all with args.waitAll). Times are measured from choosing the folder.
// Usage: node e2e/folder-upload.mjs '<json args>'; prints "RESULT {json}" on success.
import { launch, log, newPage, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();
const shot = (page, name) => screenshot(args, page, name, false);

const browser = await launch();
const { page, errors: allErrors } = await newPage(browser);
const starts = [];
page.on('response', (r) => {
  if (r.url().endsWith('/api/uploads') && r.request().method() === 'POST') {
    starts.push({ status: r.status(), files: JSON.parse(r.request().postData() ?? '{}').files?.length ?? 1 });
  }
});

/** Counts of the upload rows by state, as the page shows them. */
const states = () => page.$$eval('[data-testid=upload-item]', (els) => {
  const out = {};
  for (const e of els) out[e.dataset.state] = (out[e.dataset.state] ?? 0) + 1;
  return out;
});

try {
  await signIn(page, args.url, args.email, args.password);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Upload' }).click();
  await page.waitForURL('**/upload');

  // Choose the folder (the "Choose a folder" input, webkitdirectory).
  const t0 = Date.now();
  await page.locator('#pick-folder').setInputFiles(args.folder);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=upload-item]').length === n,
    args.files, { timeout: 60_000 });
  const picked = Date.now() - t0;
  // Sent: no row waits, starts or uploads any more.
  await page.waitForFunction(() => !document.querySelector(
    '[data-testid=upload-item][data-state=queued], [data-testid=upload-item][data-state=starting], '
    + '[data-testid=upload-item][data-state=uploading]'), null, { timeout: args.timeoutMs, polling: 250 });
  const sent = Date.now() - t0;
  log('sent', sent, 'ms', JSON.stringify(await states()));
  await shot(page, 'folder-upload-1-sent');
  // The live path: rows turn done as their uploads are processed (one query per batch),
  // each with its file's result. With args.waitAll, until every row is done.
  const doneRows = args.waitAll ? args.files : args.firstDone;
  await page.waitForFunction((n) => document.querySelectorAll(
    '[data-testid=upload-item][data-state=done] .result').length >= n, doneRows,
  { timeout: args.timeoutMs, polling: 500 });
  const processed = Date.now() - t0;
  log('processed', doneRows, 'in', processed, 'ms', JSON.stringify(await states()));
  await shot(page, 'folder-upload-2-done');
  const rows = await page.$$eval('[data-testid=upload-item]', (els) => els.map((e) => ({
    state: e.dataset.state, server: e.dataset.serverStatus,
    results: [...e.querySelectorAll('.result')].map((r) => r.getAttribute('data-status')),
    error: e.querySelector('.form-error, .why')?.textContent ?? '' })));
  const count = (key) => rows.reduce((acc, r) => ({ ...acc, [r[key]]: (acc[r[key]] ?? 0) + 1 }), {});
  const result = { picked, sent, processed, processedRows: doneRows, starts, states: count('state'),
    serverStatuses: count('server'),
    results: rows.reduce((acc, r) => {
      for (const s of r.results) acc[s] = (acc[s] ?? 0) + 1;
      return acc;
    }, {}),
    errors: [...new Set(rows.map((r) => r.error).filter(Boolean))].slice(0, 5),
    pageErrors: allErrors.filter((e) => e.startsWith('pageerror')), stats: await page.getByTestId('overall-stats').textContent() };
  console.log('RESULT ' + JSON.stringify(result));
} catch (err) {
  console.error(err?.stack ?? String(err));
  console.error('states', JSON.stringify(await states().catch(() => null)));
  const failed = await page.$$eval('[data-testid=upload-item][data-state=failed]', (els) => els.slice(0, 3)
    .map((e) => e.innerText)).catch(() => []);
  console.error('failed rows', JSON.stringify(failed), 'starts', JSON.stringify(starts.slice(-5)));
  await shot(page, 'folder-upload-failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
