// End-to-end scenarios in headless Chromium (Debian's, driven by playwright-core).
// Usage: node e2e/run.mjs <scenario> '<json args>'; prints "RESULT {json}" on success.
// The pytest side (tests/e2e/) starts the local cloud, prepares data and checks results.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { decideConsent, log, newPage as openPage, runScript, screenshot, scriptArgs, signIn }
  from './browser.mjs';

const scenario = process.argv[2];
const args = scriptArgs(3);

const shot = (page, name, fullPage = true) => screenshot(args, page, name, fullPage);

function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

// These scenarios read what the app sends (analytics events, consent records): keep bodies.
const newPage = (browser, opts = {}) => openPage(browser, opts, { bodies: true });

async function signUp(page, url, email, password) {
  await page.goto(`${url}/signup`);
  await decideConsent(page, false);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('I confirm that I am 18').check();
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL('**/upload');
}

/** Statistics of the viewer's canvas pixels: how much is non-black, and a checksum. */
async function canvasStats(page) {
  return page.evaluate(() => {
    const canvases = [...document.querySelectorAll('.dwv-layer-group canvas')];
    let best = null;
    for (const c of canvases) {
      if (!c.width || !c.height) continue;
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0, sum = 0, sumSq = 0, hash = 0;
      for (let i = 0; i < data.length; i += 4) {
        const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
        if (data[i + 3] > 0 && v > 8) lit += 1;
        sum += v; sumSq += v * v;
        hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007;
      }
      const n = data.length / 4;
      const stats = { width: c.width, height: c.height, litFraction: lit / n, mean: sum / n,
        std: Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2)), hash };
      if (!best || stats.litFraction > best.litFraction) best = stats;
    }
    return best;
  });
}

/** The canvas after an action: the viewer redraws asynchronously, which on a loaded
 *  machine can take a while, so poll (up to ~6 s) until its checksum leaves `hash`. */
async function canvasAfterChange(page, hash) {
  let now = await canvasStats(page);
  for (let tries = 0; tries < 30 && now.hash === hash; tries += 1) {
    await page.waitForTimeout(200);
    now = await canvasStats(page);
  }
  return now;
}

async function waitForImage(page) {
  await page.waitForSelector('.viewer-page[data-loaded="true"]', { timeout: 60_000 });
  // Rendering follows the load event by a frame or two.
  for (let i = 0; i < 50; i += 1) {
    const s = await canvasStats(page);
    if (s && s.litFraction > 0.05) return s;
    await page.waitForTimeout(200);
  }
  return canvasStats(page);
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };

/** axe-core's violations on the page as it is now (evaluated through the debugging protocol,
 *  which the page's Content-Security-Policy does not govern). */
async function axeRun(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const checked = [...results.passes, ...results.violations].map((r) => r.id);
  return { page: name, passes: results.passes.length, contrastChecked: checked.includes('color-contrast'),
    violations: results.violations.map((v) => ({ page: name, id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })) };
}

/** Audit the page at desktop and phone width (the layout changes between them), and in the
 *  dark colour scheme (styles.css has one: its contrast is checked too). */
async function audit(page, name, audits) {
  for (const [label, size, colorScheme] of [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'light'],
    ['desktop dark', DESKTOP, 'dark']]) {
    await page.setViewportSize(size);
    await page.emulateMedia({ colorScheme });
    await page.waitForTimeout(150);
    audits.push(await axeRun(page, `${name} (${label})`));
    if (colorScheme === 'light') await shot(page, `a11y-${name}-${label}`, false);
  }
  await page.setViewportSize(DESKTOP);
  await page.emulateMedia({ colorScheme: 'light' });
}

const scenarios = {
  /** Sign up, upload a real ZIP with progress and live results, list, search, view. */
  async upload(browser) {
    const { page, errors } = await newPage(browser);
    await page.goto(`${args.url}/signup`);
    await page.getByTestId('consent-banner').waitFor();
    await shot(page, '01-first-visit-consent-banner', false);
    await signUp(page, args.url, args.email, args.password);
    await shot(page, '02-upload-empty');

    // Progress: sample the overall line while the upload runs.
    const samples = [];
    const sampler = setInterval(async () => {
      const t = await page.getByTestId('overall-stats').textContent().catch(() => null);
      if (t) samples.push(t);
    }, 50);
    await page.getByTestId('file-input').setInputFiles(args.zip);
    await page.waitForSelector('[data-testid=upload-item][data-state=processing], [data-testid=upload-item][data-state=done]', { timeout: 60_000 });
    await page.waitForSelector('[data-testid=upload-item][data-state=done]', { timeout: 120_000 });
    clearInterval(sampler);
    const item = page.getByTestId('upload-item').first();
    const serverStatus = await item.getAttribute('data-server-status');
    // Every result of the archive, as the Firestore listener delivered them.
    await page.waitForFunction((n) => document.querySelectorAll('.result').length >= n, args.expectedFiles, { timeout: 60_000 });
    const results = await page.$$eval('.result', (els) => els.map((e) => ({
      status: e.getAttribute('data-status'), name: e.querySelector('.name')?.textContent,
      why: e.querySelector('.why')?.textContent ?? '' })));
    await shot(page, '03-upload-results');

    // Drag and drop: one DICOM file, dropped on the zone (already stored: a duplicate).
    const dropped = readFileSync(args.dropFile).toString('base64');
    await page.evaluate(async ([b64, name]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'application/dicom' }));
      const zone = document.querySelector('[data-testid=dropzone]');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [dropped, 'dropped-CT_small.dcm']);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=upload-item][data-state=done]').length >= 2, null, { timeout: 60_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=upload-item]')].at(-1).querySelector('.result'), null, { timeout: 30_000 });
    const droppedResult = await page.$$eval('[data-testid=upload-item]', (els) => {
      const last = els.at(-1);
      return { name: last.querySelector('.upload-head .name')?.textContent,
        statuses: [...last.querySelectorAll('.result')].map((r) => r.getAttribute('data-status')) };
    });

    await page.getByRole('link', { name: 'Studies', exact: true }).click();
    // Studies are indexed shortly after the upload is final; a person reloads.
    for (let i = 0; i < 40; i += 1) {
      const n = await page.getByTestId('study-row').count();
      const thumbs = await page.locator('.thumb img').count();
      if (n >= args.expectedStudies && thumbs > 0) break;
      await page.waitForTimeout(2000);
      if (i % 5 === 4) await page.reload();
    }
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=study-row]').length >= n, args.expectedStudies);
    await page.waitForFunction(() => document.querySelectorAll('.thumb img').length > 0, null, { timeout: 30_000 });
    await page.waitForTimeout(500);
    const listed = await page.getByTestId('study-row').count();
    const previews = await page.$$eval('.thumb img', (imgs) => imgs.filter((i) => i.complete && i.naturalWidth > 0).length);
    await shot(page, '04-studies');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, '04b-studies-phone');
    await page.setViewportSize({ width: 1280, height: 900 });

    // Search: modality, then a name prefix (the search issue's filters).
    await page.getByLabel('Modality').selectOption('MR');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    // Filters stay out of the address (POST body, history state): it stays /studies.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid=study-row] .meta')];
      return rows.length > 0 && rows.every((e) => e.textContent.includes('MR'));
    });
    await page.waitForTimeout(300);
    const byModality = await page.$$eval('[data-testid=study-row] .meta', (els) => els.map((e) => e.textContent));
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.waitForURL(/\/studies$/);
    await page.getByLabel('Patient name').fill('ct1');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=study-row]').length === 1);
    await page.waitForSelector('[data-testid=study-row]');
    await page.waitForTimeout(300);
    const byName = await page.$$eval('[data-testid=study-row] .patient', (els) => els.map((e) => e.textContent));
    await shot(page, '05-search-name');
    await page.getByLabel('Patient name').fill('nobody-like-this');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForSelector('.empty');
    const emptyText = await page.locator('.empty').textContent();

    // Viewer: the CT found above.
    await page.getByLabel('Patient name').fill('ct1');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForSelector('[data-testid=study-row]');
    await page.getByRole('link', { name: /^Open viewer: / }).first().click();
    await page.waitForURL('**/viewer/**');
    const before = await waitForImage(page);
    await shot(page, '06-viewer');
    // Window/level by dragging on the image (the default tool).
    const stage = page.locator('.viewer-stage');
    const box = await stage.boundingBox();
    const wlBefore = await page.locator('.viewer-page').getAttribute('data-wl');
    const dragTarget = await page.evaluate(([x, y]) => {
      const el = document.elementFromPoint(x, y);
      return { tag: el?.tagName, cls: String(el?.className ?? ''), layer: el?.closest('.layer')?.id ?? null,
        scrollY: window.scrollY, innerHeight: window.innerHeight };
    }, [box.x + box.width / 2, box.y + box.height / 2]);
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    for (let i = 1; i <= 10; i += 1) {
      await page.mouse.move(box.x + box.width / 2 + i * 12, box.y + box.height / 2 + i * 8);
    }
    await page.mouse.up();
    const afterDrag = await canvasAfterChange(page, before.hash);
    const wlAfter = await page.locator('.viewer-page').getAttribute('data-wl');
    await page.getByTestId('more-contrast').click();
    const afterButton = await canvasAfterChange(page, afterDrag.hash);
    await shot(page, '07-viewer-window-level');

    // A compressed series (RLE MR) decodes too.
    await page.goto(`${args.url}/studies`);
    await page.getByLabel('Modality').selectOption('MR');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid=study-row] .meta')];
      return rows.length > 0 && rows.every((e) => e.textContent.includes('MR'));
    });
    await page.getByRole('link', { name: /^Open viewer: / }).first().click();
    const rle = await waitForImage(page);
    const expiryText = await page.getByTestId('link-expiry').textContent();
    await shot(page, '08-viewer-rle');
    return { droppedResult, serverStatus, results, samples: samples.slice(0, 5).concat(samples.slice(-2)), listed, previews,
      overflow, byModality, byName, emptyText, before, afterDrag, afterButton, wlBefore, wlAfter, dragTarget, box, rle, expiryText,
      errors };
  },

  /** Share a study, open it in a fresh browser context without an account, revoke. */
  async share(browser) {
    const owner = await newPage(browser);
    await signIn(owner.page, args.url, args.email, args.password);
    await owner.page.goto(`${args.url}/studies/${args.studyId}`);
    await owner.page.getByLabel('View limit (optional)').fill('5');
    // The full study (de-identified copies: tests/e2e/test_web_share_deidentified.py).
    await owner.page.getByLabel('De-identified copy (recommended)').uncheck();
    await owner.page.getByRole('button', { name: 'Create share link' }).click();
    const shareUrl = await owner.page.getByTestId('share-url').inputValue();
    await shot(owner.page, '09-share-created');

    const guest = await newPage(browser);
    await guest.page.goto(shareUrl);
    const image = await waitForImage(guest.page);
    const guestUrl = guest.page.url();
    const heading = await guest.page.locator('h1').textContent();
    const navLinks = await guest.page.locator('.nav a').count();
    const recordedNotice = await guest.page.getByTestId('share-recorded').textContent();
    await shot(guest.page, '10-share-recipient');
    // The recipient cannot reach the owner's data: the studies API wants a sign-in.
    const studiesStatus = await guest.page.evaluate(async () => (await fetch('/api/studies')).status);
    const token = shareUrl.split('#')[1];
    const tokenInUrls = guest.requests.filter((r) => r.url.includes(token) || r.url.includes(token.split('.')[1]));
    await guest.context.close();

    // The owner sees the access history, then revokes.
    await owner.page.reload();
    await owner.page.waitForSelector('[data-testid=access-list] li[data-kind=share_used]');
    const access = await owner.page.$$eval('[data-testid=access-list] li', (els) => els.map((e) => e.getAttribute('data-kind')));
    const views = await owner.page.locator('[data-testid=share-row]').first().textContent();
    const recipients = await owner.page.$$eval('[data-testid=access-list] li[data-kind=share_used]',
      (els) => els.map((e) => e.textContent));
    await owner.page.getByRole('button', { name: 'Revoke' }).first().click();
    await owner.page.waitForSelector('[data-testid=share-row][data-status=revoked]');
    await shot(owner.page, '11-share-revoked-owner');

    const late = await newPage(browser);
    await late.page.goto(shareUrl);
    await late.page.waitForSelector('.error-state');
    const revokedText = await late.page.locator('.error-state').textContent();
    await shot(late.page, '12-share-after-revoke');

    // Restrict the study: no viewer links until lifted.
    await owner.page.getByTestId('restrict-study').click();
    await owner.page.waitForSelector('text=Processing of this study is restricted');
    const createDisabled = await owner.page.getByRole('button', { name: 'Create share link' }).isDisabled();
    await owner.page.goto(`${args.url}/viewer/${args.studyId}`);
    await owner.page.waitForSelector('.error-state');
    const restrictedViewer = await owner.page.locator('.error-state').textContent();
    await owner.page.goto(`${args.url}/studies/${args.studyId}`);
    await owner.page.getByTestId('restrict-study').click();
    await owner.page.waitForSelector('text=Restriction lifted.');

    // Delete it, with the typed confirmation.
    await owner.page.getByTestId('delete-study').click();
    await owner.page.getByTestId('confirm-input').fill('delete');
    const goDisabledWrong = await owner.page.getByTestId('confirm-go').isDisabled();
    await owner.page.getByTestId('confirm-input').fill('DELETE');
    await shot(owner.page, '12b-delete-study-confirm', false);
    await owner.page.getByTestId('confirm-go').click();
    await owner.page.waitForURL(/\/studies$/);
    await owner.page.waitForSelector('[data-testid=study-row], .empty');
    const remaining = await owner.page.$$eval('[data-testid=study-row]', (els) => els.map((e) => e.dataset.studyId));
    return { shareUrl, guestUrl, heading, navLinks, image, studiesStatus, tokenInUrls: tokenInUrls.length,
      access, views, recipients, recordedNotice, revokedText, createDisabled, restrictedViewer, goDisabledWrong, remaining,
      errors: guest.errors };
  },

  /** Nothing analytic before consent; reject keeps it so; the footer reopens; accept sends. */
  async consent(browser) {
    const { page, requests } = await newPage(browser);
    const analytic = () => requests.filter((r) => r.url.includes('/__/analytics') || r.url.includes('/api/privacy/analytics'));
    await page.goto(`${args.url}/privacy-policy`);
    await page.getByTestId('consent-banner').waitFor();
    await page.waitForTimeout(800);
    const beforeDecision = analytic().length;
    await shot(page, '13-policy-with-banner');
    await page.getByTestId('consent-reject').click();
    const stored = await page.evaluate(() => localStorage.getItem('pacs.tracking-consent'));
    await page.locator('footer').getByRole('link', { name: 'Processors' }).click();
    await page.waitForURL('**/processors');
    await page.reload();
    await page.waitForTimeout(800);
    const bannerAfterReload = await page.getByTestId('consent-banner').isVisible();
    const afterReject = analytic().length;
    await shot(page, '14-processors');
    await page.getByTestId('cookie-preferences').click();
    await page.getByTestId('consent-accept').click();
    await page.locator('footer').getByRole('link', { name: 'Privacy policy' }).click();
    await page.waitForTimeout(800);
    const afterAccept = analytic().length;
    // Signed in, events go to the privacy API, which checks the consent ledger itself.
    await signIn(page, args.url, args.email, args.password, true);
    await page.waitForTimeout(1500);
    const signedIn = analytic().filter((r) => r.url.includes('/api/privacy/analytics')).length;
    const events = analytic().map((r) => { try { return JSON.parse(r.body).event; } catch { return null; } });
    // The footer's licence notice (generated at build time).
    await page.locator('footer').getByRole('link', { name: 'Open-source licences' }).click();
    await page.waitForURL('**/third-party-licences.txt');
    const licences = (await page.locator('body').innerText()).slice(0, 3000);
    return { beforeDecision, stored, bannerAfterReload, afterReject, afterAccept, signedIn, events, licences };
  },

  /** Privacy centre: rectify, export with progress and link, delete the account. */
  async privacy(browser) {
    const { page, errors } = await newPage(browser, { acceptDownloads: true });
    await signIn(page, args.url, args.email, args.password);
    await page.getByRole('link', { name: 'Privacy', exact: true }).click();
    await page.waitForSelector('[data-testid=export-start]');
    await shot(page, '15-privacy-centre');
    await page.getByTestId('profile-form').getByLabel('Name').fill('Dr Test Rectified');
    await page.getByRole('button', { name: 'Save corrections' }).click();
    await page.waitForSelector('text=Your profile was corrected.');
    // The sign-in email: a fresh sign-in asks nothing more; a link goes to the new address.
    await page.getByTestId('sign-in-email').fill(args.newEmail);
    await page.getByRole('button', { name: 'Send confirmation link' }).click();
    await page.waitForSelector('text=A confirmation link was sent to');
    const signInEmailStatus = await page.getByTestId('sign-in-email-form').getByRole('status').textContent();
    await shot(page, '15b-sign-in-email-link-sent');
    await page.getByTestId('export-start').click();
    await page.waitForSelector('[data-testid=export-status] progress');
    const progressSeen = await page.getByTestId('export-status').textContent();
    await page.getByTestId('export-link').waitFor({ timeout: 120_000 });
    const link = await page.getByTestId('export-link').getAttribute('href');
    const archive = await page.evaluate(async (u) => {
      const r = await fetch(u);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, size: b.length, magic: String.fromCharCode(b[0], b[1]) };
    }, link);
    await page.waitForSelector('[data-testid=request-row][data-type=export][data-status=completed]');
    const rows = await page.$$eval('[data-testid=request-row]', (els) => els.map((e) => `${e.dataset.type}:${e.dataset.status}`));
    await shot(page, '16-export-ready');

    await page.getByTestId('delete-account').click();
    await page.getByTestId('confirm-input').fill('DELETE MY ACCOUNT');
    await page.getByTestId('confirm-go').click();
    await page.getByTestId('reauth-password').fill(args.password);
    await shot(page, '17-delete-reauth', false);
    await page.getByTestId('reauth-go').click();
    await page.waitForURL('**/deleted**', { timeout: 60_000 });
    await page.getByTestId('receipt').waitFor();
    await page.waitForTimeout(1000);
    await shot(page, '18-account-deleted');
    const signedOut = await page.getByTestId('user-email').count();
    return { progressSeen, link, archive, rows, signedOut, signInEmailStatus, errors };
  },

  /** Transfer syntaxes dwv cannot read (JPEG-LS, deflated), transcoded in the browser. */
  async decode(browser) {
    const { page, errors } = await newPage(browser);
    await signIn(page, args.url, args.email, args.password);
    const out = {};
    for (const { id, label } of args.studies) {
      await page.goto(`${args.url}/viewer/${id}`);
      const stats = await waitForImage(page);
      const notice = page.locator('.viewer-main .notice');
      out[label] = { stats, notice: (await notice.isVisible()) ? await notice.textContent() : null,
        status: await page.getByTestId('viewer-status').textContent() };
      await shot(page, `21-viewer-${label}`);
    }
    return { ...out, errors };
  },

  /** Automated accessibility audit (axe-core) of the key pages at desktop and phone width. */
  async a11y(browser) {
    const { page, errors } = await newPage(browser);
    const audits = [];
    await page.goto(`${args.url}/signup`);
    await page.getByTestId('consent-banner').waitFor();
    await audit(page, 'sign-up-with-consent-banner', audits);
    await page.goto(`${args.url}/signin`);
    await page.getByTestId('consent-banner').waitFor();
    await audit(page, 'sign-in-with-consent-banner', audits);
    await signIn(page, args.url, args.email, args.password);
    await page.waitForSelector('[data-testid=study-row] .thumb img');
    await audit(page, 'studies', audits);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Upload' }).click();
    await page.getByTestId('dropzone').waitFor();
    await audit(page, 'upload', audits);
    // A file that is not DICOM: the page shows a per-file result without storing anything.
    await page.getByTestId('file-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain',
      buffer: Buffer.from('not a DICOM file') });
    await page.waitForSelector('[data-testid=upload-item]');
    await page.waitForTimeout(500);
    await audit(page, 'upload-with-result', audits);
    await page.goto(`${args.url}/studies/${args.studyId}`);
    await page.waitForSelector('[data-testid=access-list] li');
    await audit(page, 'study-detail', audits);
    await page.goto(`${args.url}/viewer/${args.studyId}`);
    await waitForImage(page);
    await audit(page, 'viewer', audits);
    await page.goto(`${args.url}/privacy`);
    await page.waitForSelector('[data-testid=export-start]');
    await audit(page, 'privacy-centre', audits);
    await page.goto(`${args.url}/privacy-policy`);
    await page.locator('main h1').waitFor();
    await audit(page, 'privacy-policy', audits);
    return { audits, errors };
  },

  /** Automatic logoff after the configured idle time. */
  async idle(browser) {
    const { page } = await newPage(browser);
    await signIn(page, args.idleUrl, args.email, args.password);
    await page.getByTestId('idle-warning').waitFor({ timeout: 30_000 });
    await shot(page, '19-idle-warning', false);
    await page.waitForURL('**/signin**', { timeout: 30_000 });
    const reason = await page.getByTestId('signout-reason').textContent();
    await shot(page, '20-idle-signed-out', false);
    // The session is really gone: protected pages send to sign-in.
    await page.goto(`${args.idleUrl}/studies`);
    await page.waitForURL('**/signin**');
    return { reason, url: page.url() };
  },
};

await runScript(args, scenario, async (browser) => {
  const fn = scenarios[scenario];
  if (!fn) throw new Error(`unknown scenario ${scenario}`);
  log('scenario', scenario);
  return fn(browser);
});
