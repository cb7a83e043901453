import { ApiError, describeError } from '../api';
import { track } from '../analytics';
import { analyticsAllowed, readConsent, setConsent } from '../consent';
import { formatBytes, formatDate, formatDateTime } from '../format';
import { changeSignInEmail, getProfile, getReceipt, listRequests, mintExportLink, rectifyProfile, REQUEST_STATUS_TEXT,
  REQUEST_TYPE_TEXT, restrict, setServerConsent, submitRequest, getRequest,
  type ExportLink, type PrivacyRequest } from '../privacy-api';
import type { RouteContext } from '../router';
import { currentUser, ensureRecentSignIn, reauthenticate, signOutNow } from '../session';
import { errorState, field, h, spinner, toast, typedConfirm } from '../ui';
import { keysSection } from './keys';

const REASON_TEXT: Record<string, string> = {
  recent_sign_in_required: 'You had not signed in recently enough; confirm your password and try again.',
  erasure_in_progress: 'Your account is being deleted.',
  export_failed: 'The export could not be built. Please try again.',
};

const DOWNLOAD_ERROR_TEXT: Record<string, string> = {
  export_expired: 'This export is no longer kept. Request a new one.',
  export_not_ready: 'This export is not ready yet.',
};

function downloadError(err: unknown): string {
  return (err instanceof ApiError && DOWNLOAD_ERROR_TEXT[err.code]) || describeError(err);
}

// An export's download link is never stored: each one is minted when it is needed, lives a
// few minutes, and is given only to a recent sign-in (the password is asked again otherwise).
async function exportLink(id: string): Promise<ExportLink | null> {
  try {
    return await mintExportLink(id);
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'recent_sign_in_required')) throw err;
    if (!(await reauthenticate('Downloading your data needs a fresh sign-in: confirm your password.'))) return null;
    return mintExportLink(id);
  }
}

/** The browser's own download of a signed link (the archive is served as application/zip). */
function startDownload(url: string): void {
  const a = h('a', { href: url, download: '', rel: 'noreferrer', referrerpolicy: 'no-referrer', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

async function downloadExport(id: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    const link = await exportLink(id);
    if (link) startDownload(link.download_url);
  } catch (err) {
    toast(downloadError(err), 'error');
  } finally {
    button.disabled = false;
  }
}

function downloadButton(id: string, label: string, attrs: Record<string, string>): HTMLButtonElement {
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', () => void downloadExport(id, button));
  return button;
}

function requestRow(r: PrivacyRequest): HTMLElement {
  const ready = r.type === 'export' && r.status === 'completed';
  const until = r.result?.available_until;
  const links = !ready ? [] : r.result?.expired ? [h('span', { class: 'muted' }, 'No longer kept')]
    : [downloadButton(r.id, 'Download', { class: 'primary small', 'data-testid': 'export-download' }),
      until ? h('span', { class: 'muted' }, ` kept until ${formatDateTime(until)}`) : null];
  return h('tr', { 'data-testid': 'request-row', 'data-type': r.type, 'data-status': r.status },
    h('td', {}, REQUEST_TYPE_TEXT[r.type] ?? r.type),
    h('td', {}, h('span', { class: `badge req-${r.status}` }, REQUEST_STATUS_TEXT[r.status] ?? r.status),
      r.reason ? h('span', { class: 'why' }, ` ${REASON_TEXT[r.reason] ?? r.reason}`) : null),
    h('td', {}, formatDate(r.received_at)),
    h('td', {}, r.status === 'completed' || r.status === 'rejected' ? formatDate(r.completed_at) : formatDate(r.due_at)),
    h('td', {}, ...links));
}

/** The finished export just requested: its sign-in is recent, so a link is minted at once;
 *  once that link has expired, clicking it mints another (asking for the password if needed). */
async function readyExport(request: PrivacyRequest): Promise<HTMLElement> {
  const size = request.result?.size ? ` (${formatBytes(Number(request.result.size))})` : '';
  const kept = request.result?.available_until
    ? ` The archive is kept until ${formatDateTime(request.result.available_until)}.` : '';
  let link: ExportLink | null = null;
  try {
    link = await mintExportLink(request.id);
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'recent_sign_in_required')) return errorState(downloadError(err));
  }
  if (!link) {
    return h('p', {}, downloadButton(request.id, `Download the archive${size}`,
      { class: 'primary', 'data-testid': 'export-download-now' }),
    ` You will be asked to confirm your password.${kept}`);
  }
  let current = link;
  const note = h('span', {});
  const describe = () => { note.textContent = ` For your security this link works until ${formatDateTime(current.expires_at)}; after that it asks again.${kept}`; };
  describe();
  const anchor = h('a', { href: current.download_url, class: 'button primary', 'data-testid': 'export-link',
    rel: 'noreferrer', referrerpolicy: 'no-referrer' }, `Download the archive${size}`);
  anchor.addEventListener('click', async (e) => {
    if (Date.parse(current.expires_at) - Date.now() > 5000) return;  // still valid: follow it
    e.preventDefault();
    try {
      const next = await exportLink(request.id);
      if (!next) return;
      current = next;
      anchor.href = next.download_url;
      describe();
      startDownload(next.download_url);
    } catch (err) {
      toast(downloadError(err), 'error');
    }
  });
  return h('p', {}, anchor, note);
}

export async function renderPrivacy(ctx: RouteContext, go: (href: string) => void): Promise<void> {
  const box = h('div', {});
  ctx.outlet.append(h('h1', {}, 'Privacy centre'), box);
  box.append(spinner());
  let data: Awaited<ReturnType<typeof getProfile>>;
  try {
    data = await getProfile();
  } catch (err) {
    box.replaceChildren(errorState(describeError(err), () => go('/privacy')));
    return;
  }
  const profile = data.profile;

  // --- export ------------------------------------------------------------------------------
  const exportStatus = h('div', { 'aria-live': 'polite', 'data-testid': 'export-status' });
  const exportBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'export-start' },
    'Export my data');
  let polling = 0;
  ctx.signal.addEventListener('abort', () => window.clearTimeout(polling));
  const follow = async (id: string) => {
    try {
      const { request } = await getRequest(id);
      const steps = ['received', 'in_progress', 'completed'];
      const at = steps.indexOf(request.status);
      exportStatus.replaceChildren(
        h('progress', { max: 3, value: request.status === 'rejected' ? 3 : at + 1, 'aria-label': 'Export progress' }),
        h('p', {}, request.status === 'completed' ? 'Your export is ready.'
          : request.status === 'rejected' ? `The export was refused: ${REASON_TEXT[request.reason ?? ''] ?? request.reason}`
            : request.status === 'in_progress' ? 'Building your archive…' : 'Request received, starting soon…'),
        request.status === 'completed' ? await readyExport(request) : '');
      if (request.status === 'completed' || request.status === 'rejected') {
        void loadRequests();
        return;
      }
      polling = window.setTimeout(() => void follow(id), 2000);
    } catch (err) {
      exportStatus.replaceChildren(errorState(describeError(err)));
    }
  };
  exportBtn.addEventListener('click', async () => {
    if (!(await ensureRecentSignIn('An export holds all your data: confirm your password to start it.'))) return;
    exportBtn.disabled = true;
    try {
      const { request } = await submitRequest('export').catch(async (err) => {
        if (err instanceof ApiError && err.code === 'recent_sign_in_required'
          && await reauthenticate('Confirm your password to start the export.')) return submitRequest('export');
        throw err;
      });
      track('export_requested');
      void loadRequests();
      void follow(request.id);
    } catch (err) {
      exportStatus.replaceChildren(errorState(describeError(err)));
    } finally {
      exportBtn.disabled = false;
    }
  });

  // --- rectification -----------------------------------------------------------------------
  const nameInput = h('input', { type: 'text', value: profile?.display_name ?? '', maxlength: 100, autocomplete: 'name' });
  const emailInput = h('input', { type: 'email', value: profile?.email ?? currentUser()?.email ?? '', autocomplete: 'email' });
  const profileForm = h('form', { class: 'inline-form', 'data-testid': 'profile-form' },
    field('Name', nameInput), field('Contact email', emailInput,
      'Your contact email in our records. Your sign-in email is not changed.'),
    h('button', { type: 'submit' }, 'Save corrections'));
  profileForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body: { display_name?: string; email?: string } = {};
      if (nameInput.value.trim() !== (profile?.display_name ?? '')) body.display_name = nameInput.value.trim();
      if (emailInput.value.trim() !== (profile?.email ?? '')) body.email = emailInput.value.trim();
      if (!Object.keys(body).length) { toast('Nothing to change.'); return; }
      const { changes } = await rectifyProfile(body);
      toast(Object.keys(changes).length ? 'Your profile was corrected.' : 'Nothing to change.', 'success');
      void loadRequests();
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });

  // --- sign-in email (Firebase's verify-and-change link, on a recent sign-in) --------------
  const pending = profile?.pending_sign_in_email as { to?: string } | undefined;
  const signInInput = h('input', { type: 'email', value: '', autocomplete: 'email', required: true,
    'aria-describedby': 'sign-in-email-hint', 'data-testid': 'sign-in-email' });
  const signInStatus = h('p', { class: 'hint', id: 'sign-in-email-hint', role: 'status' },
    pending?.to ? `A confirmation link was sent to ${pending.to}; your sign-in email changes when you open it.`
      : `You sign in with ${currentUser()?.email ?? 'your email'}. A link sent to the new address confirms the change.`);
  const signInForm = h('form', { class: 'inline-form', 'data-testid': 'sign-in-email-form' },
    field('New sign-in email', signInInput), h('button', { type: 'submit' }, 'Send confirmation link'), signInStatus);
  signInForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const email = signInInput.value.trim();
    if (!email) return;
    if (!(await ensureRecentSignIn('Changing your sign-in email needs a fresh sign-in: confirm your password.'))) return;
    try {
      let res;
      try {
        res = await changeSignInEmail(email);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'recent_sign_in_required')) throw err;
        if (!(await reauthenticate('Confirm your password to change your sign-in email.'))) return;
        res = await changeSignInEmail(email);
      }
      signInStatus.textContent = `A confirmation link was sent to ${res.verification_sent_to}. Open it, then sign in with the new address.`;
      toast('Confirmation link sent.', 'success');
      void loadRequests();
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });

  // --- restriction -------------------------------------------------------------------------
  const restricted = profile?.restricted === true;
  const restrictBtn = h('button', { type: 'button', 'data-testid': 'restrict-account' },
    restricted ? 'Lift the restriction of my account' : 'Restrict processing of my account');
  restrictBtn.addEventListener('click', async () => {
    try {
      await restrict({ restricted: !restricted, type: 'restriction' });
      toast(restricted ? 'Restriction lifted.' : 'Processing of your account is restricted.', 'success');
      go('/privacy');
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });

  // --- consent -----------------------------------------------------------------------------
  const local = readConsent(window.localStorage);
  const analyticsBox = h('input', { type: 'checkbox', id: 'consent-analytics', checked: analyticsAllowed(window.localStorage),
    'data-testid': 'consent-analytics' });
  const revokeShares = h('input', { type: 'checkbox', id: 'consent-revoke' });
  const consentForm = h('form', { class: 'inline-form' },
    h('div', { class: 'check' }, analyticsBox, h('label', { for: 'consent-analytics' },
      'Allow usage analytics (counts of page views and actions, no images or health data)')),
    h('div', { class: 'check' }, revokeShares, h('label', { for: 'consent-revoke' },
      'When withdrawing, also revoke all my share links')),
    h('p', { class: 'hint' }, local ? `Your choice of ${formatDateTime(local.decidedAt)} is stored in this browser (localStorage key "pacs.tracking-consent") and in your consent record.`
      : 'You have not decided yet.'),
    h('button', { type: 'submit' }, 'Save consent settings'));
  consentForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    setConsent(window.localStorage, analyticsBox.checked);
    try {
      const res = await setServerConsent(analyticsBox.checked, !analyticsBox.checked && revokeShares.checked);
      toast(`Consent saved${res.shares_revoked ? `; ${res.shares_revoked} share links revoked` : ''}.`, 'success');
      go('/privacy');
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });
  const ledger = h('ol', { class: 'access-list' }, ...((data.consent as any)?.ledger ?? []).map((l: any) =>
    h('li', {}, `${formatDateTime(l.at)} · analytics ${l.granted ? 'granted' : 'withdrawn'}`)));

  // --- deletion ----------------------------------------------------------------------------
  const deleteBtn = h('button', { type: 'button', class: 'danger', 'data-testid': 'delete-account' },
    'Delete my account and all my data');
  deleteBtn.addEventListener('click', async () => {
    const ok = await typedConfirm('Delete your account?',
      'Your account, all studies, images, previews, share links and records are deleted. Exports you downloaded are not affected. This cannot be undone.',
      'DELETE MY ACCOUNT', 'Delete everything');
    if (!ok) return;
    // The most destructive action always asks for the password again.
    if (!(await reauthenticate('Deleting your account needs a fresh sign-in: confirm your password.'))) return;
    deleteBtn.disabled = true;
    try {
      const { request } = await submitRequest('erasure').catch(async (err) => {
        if (err instanceof ApiError && err.code === 'recent_sign_in_required'
          && await reauthenticate('Confirm your password to delete your account.')) return submitRequest('erasure');
        throw err;
      });
      if (request.receipt_id) sessionStorage.setItem('pacs.receipt', request.receipt_id);
      await signOutNow('Your account is being deleted. You have been signed out.');
      go(request.receipt_id ? `/deleted?receipt=${encodeURIComponent(request.receipt_id)}` : '/signin');
    } catch (err) {
      deleteBtn.disabled = false;
      toast(describeError(err), 'error');
    }
  });

  // --- requests ----------------------------------------------------------------------------
  const requestsBody = h('tbody', {});
  const loadRequests = async () => {
    try {
      const { requests } = await listRequests();
      requestsBody.replaceChildren(...(requests.length ? requests.map(requestRow)
        : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No requests yet.'))]));
    } catch (err) {
      requestsBody.replaceChildren(h('tr', {}, h('td', { colspan: 5 }, errorState(describeError(err)))));
    }
  };

  box.replaceChildren(
    h('p', {}, 'Exercise your rights under the ', h('a', { href: '/privacy-policy', 'data-link': true }, 'privacy policy'),
      '. We answer within 30 days; most requests complete at once.'),
    h('section', { 'aria-labelledby': 'p-export' }, h('h2', { id: 'p-export' }, 'Get a copy of your data'),
      h('p', {}, 'A ZIP archive with your original DICOM files, previews, and every record we hold about you.'),
      exportBtn, exportStatus),
    h('section', { 'aria-labelledby': 'p-profile' }, h('h2', { id: 'p-profile' }, 'Correct your profile'),
      h('p', { class: 'hint' }, 'Image content cannot be edited: delete a study and upload a corrected one.'),
      profileForm,
      h('h3', {}, 'Sign-in email'), signInForm),
    h('section', { 'aria-labelledby': 'p-consent' }, h('h2', { id: 'p-consent' }, 'Consent'), consentForm,
      ledger.childElementCount ? h('details', {}, h('summary', {}, 'Consent history'), ledger) : null),
    h('section', { 'aria-labelledby': 'p-restrict' }, h('h2', { id: 'p-restrict' }, 'Restrict processing'),
      h('p', {}, restricted ? 'Processing of your account is restricted: no viewer links, shares, API keys or analytics.'
        : 'While restricted, your data is kept but not used: no viewer links, shares or analytics. Single studies can be restricted on their page.'),
      restrictBtn),
    keysSection(),
    h('section', { 'aria-labelledby': 'p-requests' }, h('h2', { id: 'p-requests' }, 'Your requests'),
      h('table', { class: 'table', 'data-testid': 'requests' }, h('thead', {}, h('tr', {},
        ...['Request', 'Status', 'Received', 'Due / done'].map((t) => h('th', { scope: 'col' }, t)),
        // The last column holds links (download, details): named for screen readers only.
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Links')))), requestsBody)),
    h('section', { 'aria-labelledby': 'p-delete', class: 'danger-zone' }, h('h2', { id: 'p-delete' }, 'Delete your account'),
      h('p', {}, 'Deletes your account and everything uploaded with it. You will be asked to confirm your password.'),
      deleteBtn));
  void loadRequests();
}

export async function renderDeleted(ctx: RouteContext): Promise<void> {
  const id = ctx.query.get('receipt') ?? sessionStorage.getItem('pacs.receipt');
  ctx.outlet.append(h('h1', {}, 'Account deletion'));
  if (!id) {
    ctx.outlet.append(h('p', {}, 'Your account deletion was requested.'));
    return;
  }
  const box = h('div', { 'data-testid': 'receipt' }, spinner());
  ctx.outlet.append(box, h('p', {}, 'Keep this receipt number: ', h('code', {}, id)));
  let timer = 0;
  ctx.signal.addEventListener('abort', () => window.clearTimeout(timer));
  try {
    const { receipt } = await getReceipt(id);
    const done = receipt.status === 'completed';
    if (!done && !ctx.signal.aborted) timer = window.setTimeout(() => { ctx.outlet.replaceChildren(); void renderDeleted(ctx); }, 3000);
    box.replaceChildren(h('p', {}, `Status: ${REQUEST_STATUS_TEXT[receipt.status] ?? receipt.status ?? 'In progress'}`),
      receipt.completed_at ? h('p', {}, `Completed ${formatDateTime(receipt.completed_at)}.`) : h('p', {}, 'Deletion is in progress; this page updates by itself.'),
      Array.isArray(receipt.kept) && receipt.kept.length ? h('details', {}, h('summary', {}, 'What is kept and why'),
        h('ul', {}, ...receipt.kept.map((k: any) => h('li', {}, `${k.what}: ${k.why} (${k.retention})`)))) : '');
  } catch (err) {
    box.replaceChildren(errorState(describeError(err)));
  }
}
