// The viewer's browser scenarios (issue 14: files with trailing bytes, the mouse wheel, big
// series on a slow connection), in headless Debian Chromium driven by playwright-core.
// Usage: node tests/e2e/viewer_scenarios.mjs <scenario> '<json args>'; prints "RESULT {json}".
// tests/e2e/viewer_scenarios.py runs it; the pytest side prepares data and checks results.
import { log, newPage as openPage, runScript, screenshot, scriptArgs, signIn }
  from '../../web/e2e/browser.mjs';

const scenario = process.argv[2];
const args = scriptArgs(3);
const shot = (page, name) => screenshot(args, page, name);

/** A page (browser.mjs's) that also counts console warnings, with the canvas statistics
 *  installed and, with `deviceMemory`, a device that reports that little memory. */
async function newPage(browser, { deviceMemory } = {}) {
  const { context, page, errors } = await openPage(browser);
  // The viewer's budget follows navigator.deviceMemory.
  if (deviceMemory) {
    await page.addInitScript({ content: `Object.defineProperty(Navigator.prototype, 'deviceMemory', { get: () => ${deviceMemory} });` });
  }
  // Installed through the debugging protocol, which the page's CSP (no eval) does not govern,
  // so that waitForFunction can poll the canvas with a function instead of a string.
  await page.addInitScript({ content: `window.__canvasStats = ${canvasStatsInPage};` });
  const console_ = { errors, warnings: 0, warningSamples: [] };
  page.on('console', (m) => {
    if (m.type() === 'warning') {
      console_.warnings += 1;
      if (console_.warningSamples.length < 5) console_.warningSamples.push(m.text().slice(0, 200));
    }
  });
  return { context, page, console: console_ };
}

/** In the page: statistics of the viewer's most lit canvas (non-black share, a checksum). */
function canvasStatsInPage() {
  let best = null;
  for (const c of document.querySelectorAll('.dwv-layer-group canvas')) {
    if (!c.width || !c.height) continue;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0, hash = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && (data[i] + data[i + 1] + data[i + 2]) / 3 > 8) lit += 1;
      hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007;
    }
    const stats = { width: c.width, height: c.height, litFraction: lit / (data.length / 4), hash };
    if (!best || stats.litFraction > best.litFraction) best = stats;
  }
  return best;
}

const canvasStats = (page) => page.evaluate(canvasStatsInPage);

/** Wait until the canvas shows an image (a tenth of its pixels lit), checked every frame. */
async function waitForImage(page, timeout = 60_000) {
  await page.waitForFunction(() => window.__canvasStats()?.litFraction > 0.1, null, { timeout, polling: 'raf' });
  return canvasStats(page);
}

const statusText = async (page) => (await page.getByTestId('viewer-status').textContent()).split(' · ')[0];

/** Wait for the status line to leave `before`, then for the canvas to leave `hash`. */
async function afterMove(page, before) {
  await page.waitForFunction((t) => document.querySelector('[data-testid=viewer-status]')
    ?.textContent?.split(' · ')[0] !== t, before.status);
  await page.waitForFunction((h) => window.__canvasStats()?.hash !== h, before.hash, { polling: 'raf' });
  return { status: await statusText(page), slider: await page.getByLabel('Image in series').inputValue(),
    hash: (await canvasStats(page)).hash, scrollY: await page.evaluate(() => window.scrollY) };
}

/** Count image requests (signed URLs of `.dcm` objects) and how they end. */
function imageRequests(page) {
  const isImage = (r) => r.method() === 'GET' && new URL(r.url()).pathname.endsWith('.dcm');
  const counts = { started: 0, done: 0, failed: 0 };
  page.on('request', (r) => { if (isImage(r)) counts.started += 1; });
  page.on('requestfinished', (r) => { if (isImage(r)) counts.done += 1; });
  page.on('requestfailed', (r) => { if (isImage(r)) counts.failed += 1; });
  return counts;
}

/** The count of loaded images under the viewer (null when the page has none). */
const loadCount = (page) => page.getByTestId('viewer-load-count').textContent({ timeout: 2000 }).catch(() => null);

const scenarios = {
  /** A series whose first file ends in megabytes of zero bytes: the image shows, fast, and
   *  the console is not flooded. */
  async trailer(browser) {
    const { page, console: cons } = await newPage(browser);
    await signIn(page, args.url, args.email, args.password);
    const started = Date.now();
    await page.goto(`${args.url}/viewer/${args.studyId}`);
    const stats = await waitForImage(page, args.timeoutMs ?? 60_000);
    const ms = Date.now() - started;
    await page.waitForFunction(() => /^Image 1 of /.test(document.querySelector('[data-testid=viewer-status]')?.textContent ?? ''),
      null, { timeout: args.timeoutMs ?? 60_000 });
    const status = await page.getByTestId('viewer-status').textContent();
    await shot(page, '24-viewer-zero-trailer');
    return { ms, stats, status, warnings: cons.warnings, warningSamples: cons.warningSamples, errors: cons.errors };
  },

  /** The mouse wheel moves through the images right after the first one shows, without a
   *  click first, in the default tool and in zoom/pan; then the keyboard and the slider. */
  async wheel(browser) {
    const { page, console: cons } = await newPage(browser);
    await signIn(page, args.url, args.email, args.password);
    await page.goto(`${args.url}/viewer/${args.studyId}`);
    await waitForImage(page);
    await page.waitForFunction((n) => document.querySelector('[data-testid=viewer-status]')?.textContent
      ?.startsWith(`Image 1 of ${n}`), args.slices);
    const read = async () => ({ status: await statusText(page), slider: await page.getByLabel('Image in series').inputValue(),
      hash: (await canvasStats(page)).hash, scrollY: await page.evaluate(() => window.scrollY) });
    const first = await read();
    const box = await page.locator('.viewer-stage').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, 120);
    const wheelDown = await afterMove(page, first);
    await page.mouse.wheel(0, -120);
    const wheelUp = await afterMove(page, wheelDown);
    await page.getByRole('button', { name: 'Zoom/pan' }).click();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, 120);
    const zoomTool = await afterMove(page, wheelUp);
    await page.locator('.dwv-layer-group').focus();
    await page.keyboard.press('ArrowDown');
    const arrow = await afterMove(page, zoomTool);
    const focused = await page.evaluate(() => document.activeElement?.className ?? '');
    await page.getByLabel('Image in series').fill(String(args.slices - 1));
    const last = await afterMove(page, arrow);
    await shot(page, '23-viewer-slice-last');
    return { first, wheelDown, wheelUp, zoomTool, arrow, last, focused, errors: cons.errors };
  },

  /** A series bigger than the memory budget (a device reporting little memory): a window of
   *  slices is held, and moving past it holds the window there instead. */
  async window(browser) {
    const { page, console: cons } = await newPage(browser, { deviceMemory: args.deviceMemory });
    const requests = imageRequests(page);
    await signIn(page, args.url, args.email, args.password);
    await page.goto(`${args.url}/viewer/${args.studyId}`);
    await waitForImage(page);
    await page.waitForSelector('.viewer-page[data-loaded="true"]', { timeout: 120_000 });
    const first = { status: await statusText(page), count: await loadCount(page),
      sliderMax: await page.getByLabel('Image in series').getAttribute('max'), requests: { ...requests },
      hash: (await canvasStats(page)).hash };
    await shot(page, '27-viewer-window-first');
    // To the last image: outside what is held.
    await page.getByLabel('Image in series').fill(String(args.slices - 1));
    await page.waitForFunction((n) => document.querySelector('[data-testid=viewer-status]')?.textContent
      ?.startsWith(`Image ${n} of ${n} ·`), args.slices, { timeout: 60_000 });
    await page.waitForFunction((h) => window.__canvasStats()?.litFraction > 0.1 && window.__canvasStats()?.hash !== h,
      first.hash, { polling: 'raf' });
    await page.waitForSelector('.viewer-page[data-loaded="true"]', { timeout: 120_000 });
    const last = { status: await statusText(page), count: await loadCount(page), requests: { ...requests },
      hash: (await canvasStats(page)).hash };
    await shot(page, '28-viewer-window-last');
    // Back by the wheel: within the new window.
    const box = await page.locator('.viewer-stage').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, -120);
    const back = await afterMove(page, last);
    return { first, last, back, errors: cons.errors };
  },

  /** A big series on a connection throttled in Chromium: click to first image, the count while
   *  the rest loads, and leaving the series cancels what is in flight. */
  async progressive(browser) {
    const { page, console: cons } = await newPage(browser);
    await signIn(page, args.url, args.email, args.password);
    const row = page.locator(`[data-testid=study-row][data-study-id="${args.studyId}"]`);
    await row.waitFor();
    // Instance objects: signed URLs of `.dcm` objects (the API and previews are not).
    const isImage = (r) => r.method() === 'GET' && new URL(r.url()).pathname.endsWith('.dcm');
    const events = [];
    const t0 = { at: 0 };
    const now = () => Date.now() - t0.at;
    const trace = [];
    if (args.trace) {
      for (const kind of ['request', 'requestfinished']) {
        page.on(kind, (r) => trace.push(`${now()} ${kind === 'request' ? '>' : '<'} ${r.method()} ${new URL(r.url()).pathname.slice(0, 60)}`));
      }
    }
    page.on('request', (r) => { if (isImage(r)) events.push({ kind: 'start', t: now() }); });
    page.on('requestfinished', (r) => { if (isImage(r)) events.push({ kind: 'done', t: now() }); });
    page.on('requestfailed', (r) => { if (isImage(r)) events.push({ kind: 'failed', t: now(), why: r.failure()?.errorText }); });
    if (args.mbitPerSecond) {
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.enable');
      const bytesPerSecond = (args.mbitPerSecond * 1e6) / 8;
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: args.latencyMs ?? 0,
        downloadThroughput: bytesPerSecond, uploadThroughput: bytesPerSecond });
    }
    t0.at = Date.now();
    await row.getByRole('link', { name: /^Open viewer: / }).click();
    // The series' first image, in viewing order, on screen: the canvas lit while the status
    // names image 1 of them all (not "loading", and not another slice that came in first).
    await page.waitForFunction((n) => window.__canvasStats()?.litFraction > 0.1 && document.querySelector(
      '[data-testid=viewer-status]')?.textContent?.startsWith(`Image 1 of ${n} ·`), args.slices,
    { timeout: 600_000, polling: 'raf' });
    const firstImageMs = now();
    const doneAtFirst = events.filter((e) => e.kind === 'done').length;
    await shot(page, '25-viewer-big-series-first-image');
    // The count of loaded images is on the page while the rest arrives.
    await page.waitForFunction(() => /Loaded \d+ of \d+ images/.test(document.querySelector('[data-testid=viewer-load-count]')?.textContent ?? ''),
      null, { timeout: 5000 }).catch(() => {});
    const countText = await loadCount(page);
    const status = await page.getByTestId('viewer-status').textContent();
    await shot(page, '26-viewer-big-series-loading');
    let leftAt = null;
    let loadedMs = null;
    let clickedAt = null;
    const count = (kind, until = Infinity, from = -Infinity) => events.filter((e) => e.kind === kind && e.t > from && e.t <= until).length;
    const inFlight = () => count('start') - count('done') - count('failed');
    if (args.waitForAll) {
      await page.waitForSelector('.viewer-page[data-loaded="true"]', { timeout: 600_000 });
      loadedMs = now();
    } else {
      // Leave the series while images are on their way (the lanes have a gap between one
      // file and the next; leaving in it would abort nothing): the rest must not keep
      // downloading, and what is in flight is aborted.
      const deadline = Date.now() + 20_000;
      while (inFlight() < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      clickedAt = now();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Studies' }).click();
      await page.waitForURL(/\/studies$/);
      leftAt = now();
      // The aborts are reported as the browser gets to them; then nothing more may happen.
      const settled = Date.now() + 10_000;
      while (inFlight() > 0 && Date.now() < settled) await new Promise((r) => setTimeout(r, 20));
      await page.waitForTimeout(args.afterLeaveMs ?? 1500);
    }
    const allDoneMs = events.filter((e) => e.kind === 'done').at(-1)?.t ?? null;
    return { firstImageMs, loadedMs, doneAtFirst, countText, status, clickedAt, leftAt, allDoneMs,
      inFlightAtClick: clickedAt === null ? null : count('start', clickedAt) - count('done', clickedAt) - count('failed', clickedAt),
      abortedAfterClick: clickedAt === null ? null : events.filter((e) => e.kind === 'failed' && e.t > clickedAt && e.why === 'net::ERR_ABORTED').length,
      startedAfterLeave: leftAt === null ? null : count('start', Infinity, leftAt + 100),
      doneAfterLeave: leftAt === null ? null : count('done', Infinity, leftAt + 100),
      inFlightAtEnd: inFlight(),
      failedAtLeave: events.filter((e) => e.kind === 'failed').map((e) => e.why),
      started: events.filter((e) => e.kind === 'start').length, errors: cons.errors, trace: trace.slice(0, 40) };
  },
};

await runScript(args, `viewer-${scenario}`, async (browser) => {
  const fn = scenarios[scenario];
  if (!fn) throw new Error(`unknown scenario ${scenario}`);
  log('scenario', scenario);
  return fn(browser);
});
