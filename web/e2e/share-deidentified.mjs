// A de-identified share from the study page's share dialog, in headless Chromium
// (tests/e2e/test_web_share_deidentified.py): "De-identified copy" is on by default, the owner
// sees what the copy leaves out and confirms, the share list marks the share; a recipient in a
// fresh context opens the link and the copy's image renders.
// Usage: node e2e/share-deidentified.mjs '<json args>'; prints "RESULT {json}" on success.
import { newPage, runScript, screenshot, scriptArgs, signIn } from './browser.mjs';

const args = scriptArgs();

/** The best-lit viewer canvas (the dwv layers), or null. */
const canvasStats = (page) => page.evaluate(() => {
  let best = null;
  for (const c of document.querySelectorAll('.dwv-layer-group canvas')) {
    if (!c.width || !c.height) continue;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && (data[i] + data[i + 1] + data[i + 2]) / 3 > 8) lit += 1;
    }
    const stats = { width: c.width, height: c.height, litFraction: lit / (data.length / 4) };
    if (!best || stats.litFraction > best.litFraction) best = stats;
  }
  return best;
});

await runScript(args, 'share-deidentified', async (browser) => {
  const owner = await newPage(browser);
  await signIn(owner.page, args.url, args.email, args.password);
  await owner.page.goto(`${args.url}/studies/${args.studyId}`);
  const box = owner.page.getByLabel('De-identified copy (recommended)');
  const checkedByDefault = await box.isChecked();
  await owner.page.getByRole('button', { name: 'Create share link' }).click();
  const preview = owner.page.getByTestId('deid-preview');
  await preview.waitFor();
  const previewText = await preview.innerText();
  const leftOut = await owner.page.getByTestId('deid-left-out').locator('li').allInnerTexts();
  // Nothing is made before the owner confirms.
  const sharesBefore = await owner.page.locator('[data-testid=share-row]').count();
  await screenshot(args, owner.page, 'deid-01-preview');
  await owner.page.getByTestId('deid-confirm').click();
  const shareUrl = await owner.page.getByTestId('share-url').inputValue({ timeout: 90_000 });
  const createdText = await owner.page.locator('.share-result p').first().innerText();
  await owner.page.waitForSelector('[data-testid=share-row] [data-testid=share-deidentified]');
  const badge = await owner.page.getByTestId('share-deidentified').first().innerText();
  await screenshot(args, owner.page, 'deid-02-created');

  const guest = await newPage(browser);
  const guestResponses = [];
  guest.page.on('response', async (r) => {
    const type = r.headers()['content-type'] ?? '';
    if (type.includes('json')) guestResponses.push(await r.text().catch(() => ''));
  });
  await guest.page.goto(shareUrl);
  await guest.page.waitForSelector('.viewer-page[data-loaded="true"]', { timeout: 90_000 });
  let image = null;
  for (let i = 0; i < 75 && !(image && image.litFraction > 0.05); i += 1) {
    image = await canvasStats(guest.page);
    await guest.page.waitForTimeout(200);
  }
  // The copy's thumbnails (rendered from the copy) load as a full share's do.
  await guest.page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('.series-thumb img')];
    return imgs.length > 0 && imgs.every((i) => i.complete);
  }, null, { timeout: 30_000 });
  const thumbnails = await guest.page.$$eval('.series-thumb img', (imgs) => imgs.map((i) => ({
    width: i.naturalWidth, height: i.naturalHeight })));
  const patientLine = await guest.page.getByTestId('patient-line').innerText();
  await screenshot(args, guest.page, 'deid-03-recipient');
  const notice = await guest.page.getByTestId('deid-notice').innerText();
  const pageText = await guest.page.locator('body').innerText();
  const pageHtml = await guest.page.content();
  return { checkedByDefault, previewText, leftOut, sharesBefore, createdText, badge, shareUrl,
    image, thumbnails, patientLine, notice, pageText, pageHtml, guestResponses, errors: guest.errors.concat(owner.errors) };
});
