// A share recipient in OHIF (tests/e2e/test_ohif_share.py), in a fresh browser context that
// never signs in: open the share link, "Open in OHIF" on the shared study's page; OHIF reads
// DICOMweb with the share (`Authorization: Share …`). Then, from that page, ask DICOMweb for
// another study of the same owner (by its UID with the share, and by opening it in OHIF); the
// owner revokes the share (args.revoke, with the owner's ID token) and OHIF is reloaded.
// Every request URL of the context is recorded (no token in any), with the JSON DICOMweb
// answers and the pages' texts (a de-identified share: no original name or ID in either).
// Without args.otherUid / args.revoke those steps are left out. Leaves the verdict to pytest. Usage: node e2e/ohif-share.mjs '<json args>'; prints "RESULT {json}".
import { args, launch, recordRequests, report, shot, skipTour, waitForImage,
  watchConsole } from './ohif-lib.mjs';

/** DICOMweb asked from the page with the credential OHIF uses (the tab's share). */
function askWithShare(paths) {
  const headers = { Accept: 'application/dicom+json', Authorization:
    `Share ${sessionStorage.getItem('pacs.share-token')} ${sessionStorage.getItem('pacs.share-view')}` };
  return Promise.all(paths.map(async (path) => {
    const r = await fetch(path, { headers });
    const text = await r.text();
    return { path, status: r.status, body: text };
  }));
}

/** OHIF's DICOMweb requests from `from` on: path, status, credential, JSON answer. */
const since = async (from) => {
  await settled();
  return dicomweb.slice(from).map((r) => ({ path: r.path, query: r.query, status: r.status,
    share: r.share, bearer: r.bearer, body: r.body }));
};

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const { urls, dicomweb, settled } = recordRequests(context, { bodies: true });
const result = { ...watchConsole(page) };
try {
  await page.goto(args.shareUrl);
  const open = page.getByTestId('open-ohif');
  await open.waitFor({ state: 'visible' });
  result.sharePage = { href: await open.getAttribute('href'), url: page.url(),
    text: await page.locator('body').innerText() };
  await shot(page, 'ohif-share-1-page');
  await open.click();
  await page.waitForURL('**/ohif/viewer**');
  result.first = await waitForImage(page);
  result.tourShown = await skipTour(page);
  // OHIF's header shows the patient's name and ID once its "Patient" button is clicked.
  const patient = page.getByText('Patient', { exact: true });
  if (await patient.isVisible().catch(() => false)) await patient.click();
  await page.waitForTimeout(1000);
  result.viewerText = await page.locator('body').innerText();
  await shot(page, 'ohif-share-2-viewer');
  result.shared = await since(0);

  // Another study of the same owner, by its UID: with the share from the page…
  const other = args.otherUid;
  if (other) result.otherAsked = await page.evaluate(askWithShare, [
    `/dicomweb/studies?StudyInstanceUID=${other}`, `/dicomweb/studies/${other}/series`,
    `/dicomweb/studies/${other}/metadata`, `/dicomweb/studies/${other}/series/${args.otherSeriesUid}/metadata`,
    '/dicomweb/studies', '/dicomweb/series', '/dicomweb/instances']);
  // … and in OHIF.
  let from = dicomweb.length;
  if (other) {
    await page.goto(`${args.url}/ohif/viewer?StudyInstanceUIDs=${other}&share=1`);
    await page.waitForTimeout(8000);
    result.otherInOhif = { requests: await since(from), image: await waitForImage(page, 4000) };
    await shot(page, 'ohif-share-3-other');
  }

  // Without the page's view OHIF exchanges the token for a new one: a share whose views are
  // used up gives none, and OHIF goes back to /view, which says why (the view is put back
  // after).
  if (args.dropView) {
    const kept = await page.evaluate(() => sessionStorage.getItem('pacs.share-view'));
    await page.evaluate(() => sessionStorage.removeItem('pacs.share-view'));
    from = dicomweb.length;
    await page.goto(`${args.url}${result.sharePage.href}`);
    await page.waitForURL((u) => new URL(u).pathname === '/view');
    await page.getByRole('alert').first().waitFor({ state: 'visible' }).catch(() => undefined);
    result.noView = { url: page.url(), text: await page.locator('body').innerText(),
      dicomweb: dicomweb.length - from };
    await shot(page, 'ohif-share-4-no-view');
    await page.evaluate((v) => sessionStorage.setItem('pacs.share-view', v), kept);
  }

  // The owner revokes the share: OHIF, reloaded on the shared study, gets nothing more.
  if (args.revoke) {
    const r = await fetch(args.revoke, { method: 'DELETE', headers: args.ownerHeaders });
    result.revoked = r.status;
    from = dicomweb.length;
    await page.goto(`${args.url}${result.sharePage.href}`);
    await page.waitForTimeout(8000);
    result.afterRevoke = { requests: await since(from), image: await waitForImage(page, 4000),
      url: page.url() };
    await shot(page, 'ohif-share-5-revoked');
  }
} catch (err) {
  result.failure = String(err).slice(0, 500);
  await shot(page, 'ohif-share-failure').catch(() => undefined);
}
result.urls = urls;
report(result);
await browser.close();
