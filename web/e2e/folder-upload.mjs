// A folder of small DICOM files through the web client's folder picker, in headless
// Chromium (tests/e2e/test_web_folder_upload.py): every file is started and sent, and rows
// turn done with their results as the server processes them (the first args.firstDone, or
// all with args.waitAll). Times are measured from choosing the folder.
// Usage: node e2e/folder-upload.mjs '<json args>'; prints "RESULT {json}" on success.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2] ?? '{}');
const artifacts = args.artifacts ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const errors = [];
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
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
  await page.goto(`${args.url}/signin`);
  await page.waitForSelector('html[data-ready="true"]');
  const banner = page.getByTestId('consent-banner');
  if (await banner.isVisible().catch(() => false)) await page.getByTestId('consent-reject').click();
  await page.getByLabel('Email').fill(args.email);
  await page.getByLabel('Password').fill(args.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');
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
    pageErrors: errors, stats: await page.getByTestId('overall-stats').textContent() };
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
