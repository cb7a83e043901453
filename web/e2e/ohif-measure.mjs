// OHIF on an MR series in headless Chromium (tests/e2e/test_ohif_mr.py): sign in, open the
// study's page, "Open in OHIF"; the viewport renders, the wheel moves to another slice; then
// OHIF's Length tool is selected and dragged across the image. Collects the image
// coordinates of the drag's ends (from Cornerstone's own camera, window.cornerstone), the
// measurement OHIF's measurement service holds and the text of its measurement panel, and
// leaves the verdict to pytest.
// Usage: node e2e/ohif-measure.mjs '<json args>'; prints "RESULT {json}".
import { args, canvasStats, launch, openFromStudyPage, recordRequests, report, shot, signIn,
  skipTour, viewportBox, waitForImage, watchConsole, wheel } from './ohif-lib.mjs';

/** Image coordinates (column, row) of points given in CSS pixels of the viewport canvas,
 *  through the viewport's camera. Runs in the page. */
function imagePoints(points) {
  const cs = window.cornerstone;
  const canvas = [...document.querySelectorAll('[data-viewportid] canvas.cornerstone-canvas')]
    .find((x) => x.getBoundingClientRect().width > 64);
  let viewport = null;
  for (let node = canvas; node && !viewport; node = node.parentElement) {
    viewport = cs.getEnabledElement(node)?.viewport ?? null;
  }
  const imageId = viewport.getCurrentImageId();
  return { imageId: imageId.replace(/^[a-z]+:/, '').replace(/^https?:\/\/[^/]+/, ''),
    points: points.map((p) => cs.utilities.worldToImageCoords(imageId, viewport.canvasToWorld(p))) };
}

/** The measurements OHIF's measurement service holds (what its panel lists). */
function measurements() {
  return window.services.measurementService.getMeasurements().map((m) => ({
    toolName: m.toolName, label: m.label ?? null, displayText: m.displayText ?? null,
    lengths: Object.values(m.data ?? {}).map((d) => d?.length ?? null),
    units: Object.values(m.data ?? {}).map((d) => d?.unit ?? null),
  }));
}

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const { urls, dicomweb } = recordRequests(context);
const result = { ...watchConsole(page), dicomweb };
try {
  await signIn(page);
  result.href = await openFromStudyPage(page);
  result.first = await waitForImage(page);
  result.tourShown = await skipTour(page);
  await shot(page, 'ohif-mr-1-viewer');
  if (!result.first) throw new Error('no image in the viewport');
  result.afterWheel = await wheel(page);
  await shot(page, 'ohif-mr-2-wheel');
  result.toolbar = await page.$$eval('[data-cy]', (els) => els.map((e) => e.getAttribute('data-cy'))
    .filter((v) => /tool|measure|length|split/i.test(v)));

  // The Length tool: OHIF's measurement tools' primary button is Length.
  await page.locator('[data-cy="MeasurementTools-split-button-primary"]').click();
  await page.waitForTimeout(500);
  const box = await viewportBox(page);
  const side = Math.min(box.width, box.height);
  const cx = box.width / 2, cy = box.height / 2;
  const from = [cx - side * 0.2, cy - side * 0.1];
  const to = [cx + side * 0.2, cy + side * 0.1];
  result.drag = { from, to };
  result.image = await page.evaluate(imagePoints, [from, to]);
  await page.mouse.move(box.x + from[0], box.y + from[1]);
  await page.mouse.down();
  await page.mouse.move(box.x + to[0], box.y + to[1], { steps: 12 });
  await page.mouse.up();
  await page.waitForTimeout(1500);
  await shot(page, 'ohif-mr-3-length');
  // Longitudinal mode asks whether to track the series' measurements: yes.
  const track = page.getByRole('button', { name: /^Yes$/ });
  if (await track.first().isVisible().catch(() => false)) {
    result.trackPrompt = true;
    await track.first().click();
    await page.waitForTimeout(1500);
  }
  result.measurements = await page.evaluate(measurements);
  // The measurement panel (collapsed at first): open it from its side-bar button.
  const panel = page.locator('[data-cy="trackedMeasurements-panel"]');
  if (!await panel.isVisible().catch(() => false)) {
    await page.locator('[data-cy="trackedMeasurements-btn"]').click();
    await panel.waitFor({ state: 'visible' });
    await page.waitForTimeout(500);
  }
  result.panel = await page.evaluate(() => {
    const panel = document.querySelector('[data-cy="trackedMeasurements-panel"], [data-cy="measurements-panel"]');
    return panel ? panel.innerText : null;
  });
  result.afterMeasure = await page.evaluate(canvasStats);
  await shot(page, 'ohif-mr-4-panel');
} catch (err) {
  result.failure = String(err).slice(0, 500);
  await shot(page, 'ohif-mr-failure').catch(() => undefined);
}
result.tokenInUrl = urls.some((u) => /[?&](token|access_token|id_token)=/i.test(u));
report(result);
await browser.close();
