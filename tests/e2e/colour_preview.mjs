// The colour preview scenario of tests/e2e/test_web_colour_preview.py, in headless Chromium
// (Debian's, driven by web/node_modules/playwright-core through web/e2e/browser.mjs).
// Usage: node ../tests/e2e/colour_preview.mjs '<json args>'; prints "RESULT {json}".
// Signs in, opens the studies list and the viewer of each colour study, and reports every
// preview image the page shows: where it points, whether it loaded, its natural size.
import { newPage, runScript, screenshot, scriptArgs, signIn } from '../../web/e2e/browser.mjs';

const args = scriptArgs();
const shot = (page, name) => screenshot(args, page, name);

/** Every loaded <img> under `selector`: src, complete, natural size. */
const images = (page, selector) => page.$$eval(selector, (imgs) => imgs.map((i) => ({
  src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight })));

/** Wait until `box` shows its outcome: an image that finished loading (or failed), or a
 *  non-empty "no preview" placeholder (no URL in the manifest); report its images. */
async function settled(page, box) {
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    if (!el) return false;
    const imgs = [...el.querySelectorAll('img')];
    if (imgs.length) return imgs.every((i) => i.complete);
    return (el.querySelector('.no-preview')?.textContent ?? '') !== '';
  }, box, { timeout: 60_000 });
  return images(page, `${box} img`);
}

await runScript(args, 'colour-preview', async (browser) => {
  const { page, errors } = await newPage(browser);
  await signIn(page, args.url, args.email, args.password);

  const result = { list: {}, viewer: {}, errors };
  for (const id of args.studies) {
    const box = `.thumb[data-study="${id}"]`;
    await page.locator(box).scrollIntoViewIfNeeded();
    result.list[id] = await settled(page, box);
  }
  await shot(page, 'colour-preview-studies');
  for (const id of args.studies) {
    await page.goto(`${args.url}/viewer/${id}`);
    await page.waitForSelector('.series-thumb');
    result.viewer[id] = await settled(page, '.series-thumb');
    await shot(page, `colour-preview-viewer-${id.slice(0, 8)}`);
  }
  return result;
});
