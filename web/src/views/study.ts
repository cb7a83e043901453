import { doc, getDoc } from 'firebase/firestore';
import { api, ApiError, describeError } from '../api';
import { getBackend } from '../firebase';
import { track } from '../analytics';
import { formatBytes, formatDateTime, formatDicomDate, formatPersonName } from '../format';
import { requestDownloadLink, startDownload } from '../download';
import { forgetManifest } from '../manifests';
import { ohifUrl } from '../ohif-access';
import { restrict } from '../privacy-api';
import type { RouteContext } from '../router';
import { announce, errorState, field, h, spinner, toast, typedConfirm } from '../ui';
import { confirmDeidentified, deidentifiedBadge, deidentifiedField, preparingNote } from './share-deid';

interface Share {
  share_id: string;
  study_id: string;
  created_at: string;
  expires_at: string;
  max_views: number | null;
  views: number;
  revoked: boolean;
  status: string;
  last_used_at: string | null;
  deidentified?: boolean;
  left_out?: Record<string, number>;
  copy_status?: string | null;
}

interface AccessRecord {
  id: string;
  kind: string;
  actor_type: string;
  at: string;
  ip?: string | null;
  user_agent?: string | null;
  /** Share recipients: their network (IP truncated to /24 or /48) and browser family only. */
  ip_prefix?: string | null;
  browser?: string | null;
  share_id?: string;
  study_id?: string;
  series_id?: string;
  urls?: number;
  view?: number;
}

export const ACCESS_TEXT: Record<string, string> = {
  manifest: 'You opened the study',
  series_urls: 'Images were loaded',
  share_created: 'Share link created',
  share_used: 'Share link opened',
  share_revoked: 'Share link revoked',
};

export const SHARE_STATUS_TEXT: Record<string, string> = {
  active: 'Active', revoked: 'Revoked', expired: 'Expired', exhausted: 'View limit reached',
};

export function shareUrl(token: string, origin = window.location.origin): string {
  // The token goes in the fragment: browsers never send it to any server.
  return `${origin}/view#${token}`;
}

function ohifLink(studyInstanceUid: unknown, restricted: boolean): HTMLElement | string {
  if (typeof studyInstanceUid !== 'string' || !studyInstanceUid) return '';
  return h('a', { class: `button${restricted ? ' disabled' : ''}`,
    href: restricted ? null : ohifUrl(studyInstanceUid), 'data-testid': 'open-ohif',
    'aria-disabled': restricted ? 'true' : null }, 'Open in OHIF');
}

/** "Download (ZIP)": a single-use link from the DICOMweb function, handed to the browser's
 *  download manager (the ZIP streams from the function, never through this page). */
function zipButton(studyInstanceUid: unknown, restricted: boolean): HTMLElement | string {
  if (typeof studyInstanceUid !== 'string' || !studyInstanceUid) return '';
  const btn = h('button', { type: 'button', 'data-testid': 'download-zip', disabled: restricted },
    'Download (ZIP)') as HTMLButtonElement;
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      startDownload((await requestDownloadLink(studyInstanceUid)).url);
      announce('The download of the study as a ZIP has started.');
    } catch (err) {
      toast(`The study could not be downloaded: ${describeError(err)}`, 'error');
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

export async function renderStudy(ctx: RouteContext, go: (href: string) => void): Promise<void> {
  const id = ctx.params.id;
  const box = h('div', {});
  ctx.outlet.append(box);
  box.append(spinner('Loading the study…'));
  let data: { study: Record<string, any>; series: Record<string, any>[] };
  try {
    data = await api(`/studies/${encodeURIComponent(id)}`, { signal: ctx.signal });
  } catch (err) {
    box.replaceChildren(h('h1', {}, 'Study'), err instanceof ApiError && err.status === 404
      ? errorState('This study does not exist or was deleted.') : errorState(describeError(err),
        () => go(location.pathname)));
    return;
  }
  track('study_opened', id);
  const s = data.study;
  const title = s.StudyDescription || 'Untitled study';
  // The restriction flag is on the study document (readable by its owner under the rules);
  // the studies API does not return it.
  let restricted = s.restricted === true;
  try {
    const snap = await getDoc(doc(getBackend().db, 'studies', id));
    restricted = snap.data()?.restricted === true;
  } catch {
    /* the API answer stands */
  }

  const seriesTable = h('table', { class: 'table' },
    h('caption', { class: 'sr-only' }, 'Series of this study'),
    h('thead', {}, h('tr', {}, ...['No.', 'Modality', 'Description', 'Body part', 'Images', 'Size']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...data.series.map((se) => h('tr', {},
      h('td', {}, String(se.SeriesNumber ?? '–')), h('td', {}, se.Modality ?? '–'),
      h('td', {}, se.SeriesDescription || '–'), h('td', {}, se.BodyPartExamined || '–'),
      h('td', {}, String(se.instance_count ?? '–')), h('td', {}, formatBytes(se.total_bytes))))));

  const info = h('dl', { class: 'facts' },
    ...[['Patient', formatPersonName(s.PatientName)], ['Patient ID', s.PatientID || '–'],
      ['Birth date', formatDicomDate(s.PatientBirthDate)], ['Sex', s.PatientSex || '–'],
      ['Study date', formatDicomDate(s.StudyDate)], ['Accession', s.AccessionNumber || '–'],
      ['Images', String(s.instance_count ?? '–')], ['Size', formatBytes(s.total_bytes)]]
      .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

  // --- sharing ---------------------------------------------------------------------------
  const shareList = h('ul', { class: 'share-list', 'data-testid': 'share-list' });
  const shareResult = h('div', { class: 'share-result', 'aria-live': 'polite' });
  const expiry = h('select', { name: 'expiry' },
    h('option', { value: '3600' }, '1 hour'), h('option', { value: '86400', selected: true }, '24 hours'),
    h('option', { value: '259200' }, '3 days'), h('option', { value: '604800' }, '7 days'));
  const maxViews = h('input', { type: 'number', min: 1, max: 10000, name: 'max_views',
    inputmode: 'numeric', placeholder: 'No limit' });
  const deid = deidentifiedField(restricted);
  const shareForm = h('form', { class: 'inline-form', 'data-testid': 'share-form' },
    field('Link valid for', expiry), field('View limit (optional)', maxViews,
      'How many times the link may be opened.'), deid.field,
    h('button', { type: 'submit', class: 'primary', disabled: restricted }, 'Create share link'));
  shareForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body: Record<string, unknown> = { study_id: id, expires_in_seconds: Number(expiry.value) };
    if (maxViews.value) body.max_views = Number(maxViews.value);
    body.deidentified = deid.box.checked;
    // A de-identified copy: the owner sees what it leaves out, and confirms, first.
    if (deid.box.checked && !(await confirmDeidentified(id, shareResult))) return;
    if (deid.box.checked) shareResult.replaceChildren(spinner('Making the de-identified copy…'));
    try {
      const created = await api<{ token: string; share_id: string; expires_at: string; copy_status?: string }>(
        '/links/shares', { method: 'POST', body });
      track('share_created', id);
      const url = shareUrl(created.token);
      const out = h('input', { type: 'text', readonly: true, value: url, 'data-testid': 'share-url',
        'aria-label': 'Share link' });
      const copyBtn = h('button', { type: 'button', onclick: async () => {
        const ok = await copy(url);
        if (!ok) { out.select(); }
        announce(ok ? 'Link copied.' : 'Select the link and copy it.');
        toast(ok ? 'Link copied to the clipboard.' : 'Select the link and copy it.', ok ? 'success' : 'info');
      } }, 'Copy link');
      shareResult.replaceChildren(h('p', {}, `Anyone with this link can view ${body.deidentified
        ? 'the de-identified copy of ' : ''}this study until `,
        formatDateTime(created.expires_at), '. It is shown only now: copy it.'), preparingNote(created), out, copyBtn);
      out.focus();
      out.select();
      void loadShares();
      void loadAccess();
    } catch (err) {
      shareResult.replaceChildren(errorState(describeError(err)));
    }
  });

  const loadShares = async () => {
    try {
      const { shares } = await api<{ shares: Share[] }>('/links/shares');
      const mine = shares.filter((x) => x.study_id === id);
      shareList.replaceChildren(...(mine.length ? mine.map((x) => h('li', { 'data-testid': 'share-row',
        'data-status': x.status },
      h('span', { class: `badge status-${x.status}` }, SHARE_STATUS_TEXT[x.status] ?? x.status),
      deidentifiedBadge(x),
      ` Created ${formatDateTime(x.created_at)}, expires ${formatDateTime(x.expires_at)}, `,
      `${x.views} view${x.views === 1 ? '' : 's'}${x.max_views ? ` of ${x.max_views}` : ''}`,
      x.status === 'active' ? h('button', { type: 'button', class: 'small danger', onclick: async () => {
        try {
          await api(`/links/shares/${x.share_id}`, { method: 'DELETE' });
          toast('Share link revoked.', 'success');
          void loadShares();
          void loadAccess();
        } catch (err) {
          toast(describeError(err), 'error');
        }
      } }, 'Revoke') : null)) : [h('li', { class: 'muted' }, 'No share links yet.')]));
    } catch (err) {
      shareList.replaceChildren(h('li', {}, errorState(describeError(err), () => void loadShares())));
    }
  };

  // --- access history --------------------------------------------------------------------
  const accessList = h('ol', { class: 'access-list', 'data-testid': 'access-list' });
  const loadAccess = async () => {
    try {
      const { records } = await api<{ records: AccessRecord[] }>('/links/access', { query: { limit: 200 } });
      const mine = records.filter((r) => r.study_id === id).slice(0, 50);
      accessList.replaceChildren(...(mine.length ? mine.map((r) => h('li', { 'data-kind': r.kind },
        h('time', { datetime: r.at }, formatDateTime(r.at)), ' · ',
        ACCESS_TEXT[r.kind] ?? r.kind,
        r.actor_type === 'share' ? ` (share link${r.view ? `, view ${r.view}` : ''})` : '',
        r.ip ? h('span', { class: 'muted' }, ` · ${r.ip}`) : null,
        r.ip_prefix || r.browser ? h('span', { class: 'muted', 'data-testid': 'access-recipient' },
          ` · ${[r.ip_prefix ? `network ${r.ip_prefix}` : '', r.browser ?? ''].filter(Boolean).join(', ')}`) : null)) : [h('li', { class: 'muted' }, 'No access recorded yet.')]));
    } catch (err) {
      accessList.replaceChildren(h('li', {}, errorState(describeError(err))));
    }
  };

  // --- restriction and deletion ----------------------------------------------------------
  const restrictBtn = h('button', { type: 'button', 'data-testid': 'restrict-study' },
    restricted ? 'Lift the restriction' : 'Restrict processing of this study');
  restrictBtn.addEventListener('click', async () => {
    try {
      await restrict({ restricted: !restricted, type: 'restriction', study_id: id });
      forgetManifest(id);
      toast(restricted ? 'Restriction lifted.' : 'Processing restricted: no viewer links or shares until you lift it.', 'success');
      go(location.pathname);
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });
  const deleteBtn = h('button', { type: 'button', class: 'danger', 'data-testid': 'delete-study' },
    'Delete this study');
  deleteBtn.addEventListener('click', async () => {
    const ok = await typedConfirm('Delete this study?',
      'All images, previews and share links of this study are deleted for good. This cannot be undone.',
      'DELETE', 'Delete study');
    if (!ok) return;
    deleteBtn.disabled = true;
    try {
      const body = await api<{ deletion?: { status?: string } }>(
        `/studies/${encodeURIComponent(id)}`, { method: 'DELETE' });
      forgetManifest(id);
      // 202: an upload of this study is still being processed; the deletion finishes by
      // itself once it ends (nothing more is stored for the study meanwhile).
      toast(body?.deletion?.status === 'completed' ? 'The study was deleted.'
        : 'The study is being deleted. It finishes by itself once the upload in progress ends.',
      'success');
      go('/studies');
    } catch (err) {
      deleteBtn.disabled = false;
      toast(`The study could not be deleted completely: ${describeError(err)} Try again.`, 'error');
    }
  });

  box.replaceChildren(
    h('div', { class: 'page-head' }, h('h1', {}, title),
      h('div', { class: 'actions' },
        h('a', { class: `button primary${restricted ? ' disabled' : ''}`, href: `/viewer/${id}`,
          'data-link': true, 'aria-disabled': restricted ? 'true' : null }, 'Open viewer'),
        ohifLink(s.StudyInstanceUID, restricted), zipButton(s.StudyInstanceUID, restricted))),
    restricted ? h('p', { class: 'notice' }, 'Processing of this study is restricted: it cannot be viewed or shared until you lift the restriction.') : '',
    info,
    h('h2', {}, 'Series'), seriesTable,
    h('section', { 'aria-labelledby': 'share-title' }, h('h2', { id: 'share-title' }, 'Share'),
      h('p', {}, 'A share link lets someone without an account view this study only, until it expires or you revoke it.'),
      shareForm, shareResult, h('h3', {}, 'Share links'), shareList),
    h('section', { 'aria-labelledby': 'access-title' }, h('h2', { id: 'access-title' }, 'Access history'),
      accessList),
    h('section', { 'aria-labelledby': 'manage-title', class: 'danger-zone' },
      h('h2', { id: 'manage-title' }, 'Manage'), h('div', { class: 'actions' }, restrictBtn, deleteBtn)));
  void loadShares();
  void loadAccess();
}
