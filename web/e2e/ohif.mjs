// The OHIF Viewer under /ohif/ in headless Chromium (tests/e2e/test_ohif.py): sign in, open a
// study's page, "Open in OHIF", and watch the viewer load from this site's DICOMweb with the
// session's token. Collects what it sees (every /dicomweb request with its status and whether
// it carried the bearer header, CSP violations, page errors, the viewport canvas' pixels
// before and after the wheel) and leaves the verdict to pytest.
// Usage: node e2e/ohif.mjs '<json args>'; prints "RESULT {json}".
import { args, launch, openFromStudyPage, report, shot, signIn, skipTour, waitForImage,
  watchConsole, wheel } from './ohif-lib.mjs';

const FORGED = 'forged-e2e-token';
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const { errors, csp } = watchConsole(page);
const dicomweb = [];
const urls = [];
// Requests of the viewer's document (and its workers), not of the study page before it.
page.on('request', (r) => {
  let from = '';
  try { from = r.frame().url(); } catch { from = r.url(); }
  if (from.includes('/ohif/') || r.url().includes('/ohif/')) urls.push(r.url());
});
page.on('response', (r) => {
  const url = new URL(r.url());
  if (!url.pathname.startsWith('/dicomweb/')) return;
  const auth = r.request().headers().authorization ?? '';
  dicomweb.push({ path: url.pathname, query: url.search, status: r.status(),
    bearer: auth.startsWith('Bearer ') && auth.length > 40, forged: auth.includes(FORGED) });
});
const result = { errors, csp, dicomweb };
try {
  // Without a session the viewer sends nobody anywhere but to sign-in, and asks DICOMweb
  // nothing.
  const anonymous = await browser.newContext();
  const stranger = await anonymous.newPage();
  const asked = [];
  stranger.on('request', (r) => { if (r.url().includes('/dicomweb/')) asked.push(r.url()); });
  await stranger.goto(`${args.url}/ohif/viewer?StudyInstanceUIDs=1.2.3`);
  await stranger.waitForURL('**/signin?next=**');
  result.anonymous = { url: stranger.url(), dicomweb: asked.length };
  await anonymous.close();

  await signIn(page);
  result.href = await openFromStudyPage(page);
  result.crossOriginIsolated = await page.evaluate(() => window.crossOriginIsolated);
  result.first = await waitForImage(page);
  await shot(page, 'ohif-1-viewer');
  result.tourShown = await skipTour(page);
  if (result.first && args.wheel) {
    result.afterWheel = await wheel(page);
    await shot(page, 'ohif-2-wheel');
  }
  result.url = page.url();
  result.tokenInUrl = urls.some((u) => /[?&](token|access_token|id_token)=/i.test(u));
  // A `token` in the viewer's URL is dropped before OHIF reads it: the session's token stays
  // the bearer.
  const before = dicomweb.length;
  await page.goto(`${args.url}${result.href}&token=${FORGED}`);
  result.forgedFirst = await waitForImage(page);
  result.forged = { url: page.url(), requests: dicomweb.length - before,
    forgedBearer: dicomweb.slice(before).filter((r) => r.forged).length,
    bearer: dicomweb.slice(before).filter((r) => r.bearer).length };
} catch (err) {
  result.failure = String(err).slice(0, 500);
  await shot(page, 'ohif-failure').catch(() => undefined);
}
result.requestHosts = [...new Set(urls.map((u) => new URL(u).host))];
report(result);
await browser.close();
