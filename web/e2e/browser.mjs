// What every browser script of the e2e tests shares: the JSON arguments, screenshots, and
// headless Debian Chromium with a page that records its errors, signed in as a person would.
// Scripts under tests/e2e import this file by its path; playwright-core resolves from web/.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

// Without the background-networking flags Chromium dials Google's hosts, which this
// machine's closed network refuses many at a time.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const DESKTOP = { width: 1280, height: 900 };

/** The script's JSON arguments (argv[index]), with `artifacts` defaulted and created. */
export function scriptArgs(index = 2) {
  const args = JSON.parse(process.argv[index] ?? '{}');
  args.artifacts ??= 'test-artifacts';
  mkdirSync(args.artifacts, { recursive: true });
  return args;
}

export const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

/** A PNG of the page in the artifacts folder, for a person to look at after the run. */
export const screenshot = (args, page, name, fullPage = true) =>
  page.screenshot({ path: join(args.artifacts, `${name}.png`), fullPage });

export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });

const openPages = [];

/** A page in a new context; its console errors, page errors and requests are collected
 *  (request bodies only with `bodies`: an upload's would be held in memory). */
export async function newPage(browser, options = {}, { bodies = false } = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, ...options });
  const page = await context.newPage();
  openPages.push(page);
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method(),
    body: bodies ? r.postData() ?? '' : '' }));
  return { context, page, errors, requests };
}

/** Accept or reject the tracking-consent banner if the app shows it. */
export async function decideConsent(page, accept = false) {
  // The banner is added by the app's boot code: wait for it before deciding it is absent.
  await page.waitForSelector('html[data-ready="true"]');
  const banner = page.getByTestId('consent-banner');
  if (await banner.isVisible().catch(() => false)) {
    await page.getByTestId(accept ? 'consent-accept' : 'consent-reject').click();
  }
}

/** Sign in through the sign-in page and wait for the studies list. */
export async function signIn(page, url, email, password, consent = false) {
  await page.goto(`${url}/signin`);
  await decideConsent(page, consent);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/studies');
}

/** Run `body(browser)` and print its result as the `RESULT {json}` line the tests read. On
 *  failure every page opened by newPage is saved as `failure-{name}-{n}.png` and its text
 *  printed, so the test's output shows what the person would have seen. */
export async function runScript(args, name, body) {
  const browser = await launch();
  try {
    console.log('RESULT ' + JSON.stringify(await body(browser)));
  } catch (err) {
    console.error(err?.stack ?? String(err));
    process.exitCode = 1;
    for (const [n, page] of openPages.entries()) {
      await screenshot(args, page, `failure-${name}-${n}`).catch(() => {});
      console.error((await page.locator('body').innerText().catch(() => '')).slice(0, 3000));
    }
  } finally {
    await browser.close();
  }
}
