import { api, ApiError, describeError } from '../api';
import { formatDateTime, formatDicomDate, formatPersonName } from '../format';
import { ownerManifest, refreshDelayMs, seriesInstances, shareManifest, type InstanceEntry,
  type Manifest, type SeriesEntry, type SeriesPage } from '../manifests';
import { ohifUrl, saveShareView, SHARE_TOKEN_KEY } from '../ohif-access';
import type { RouteContext } from '../router';
import { announce, errorState, h, spinner } from '../ui';
import type { Tool } from '../viewer/dwv-viewer';
import { canDecode, TRANSFER_SYNTAX_NAMES } from '../viewer/syntaxes';
import { deidentifiedNotice } from './share-deid';

/** The share token from the URL fragment (never a query string); the fragment is then
 *  removed from the address bar and kept for this tab only. */
export function takeShareToken(loc: Pick<Location, 'hash'> = window.location): string | null {
  const fromHash = loc.hash.replace(/^#/, '').trim();
  if (fromHash) {
    try { sessionStorage.setItem(SHARE_TOKEN_KEY, fromHash); } catch { /* ignore */ }
    history.replaceState(null, '', '/view');
    return fromHash;
  }
  try { return sessionStorage.getItem(SHARE_TOKEN_KEY); } catch { return null; }
}

interface Source {
  manifest(force: boolean): Promise<Manifest>;
  page(seriesId: string, pageToken: string | null): Promise<SeriesPage>;
  /** Owners' manifests are renewed before they expire; a share's only when needed. */
  autoRefresh: boolean;
}

function ownerSource(studyId: string): Source {
  return {
    manifest: (force) => ownerManifest(studyId, force),
    page: (seriesId, pageToken) => api<SeriesPage>('/links/series', { method: 'POST',
      body: { study_id: studyId, series_id: seriesId, ...(pageToken ? { page_token: pageToken } : {}) } }),
    autoRefresh: true,
  };
}

function shareSource(token: string): Source {
  let view: string | undefined;
  let current: Manifest | undefined;
  return {
    async manifest() {
      current = await shareManifest(token);
      view = current.view;
      saveShareView(view); // OHIF in this tab reads the study during this view
      return current;
    },
    page: (seriesId, pageToken) => api<SeriesPage>('/links/share/series', { method: 'POST', auth: false,
      body: { token, view, series_id: seriesId, ...(pageToken ? { page_token: pageToken } : {}) } }),
    autoRefresh: false,
  };
}

export async function renderOwnerViewer(ctx: RouteContext): Promise<void> {
  await renderViewer(ctx, ownerSource(ctx.params.id), false);
}

export async function renderShareViewer(ctx: RouteContext): Promise<void> {
  const token = takeShareToken();
  if (!token) {
    ctx.outlet.append(h('h1', {}, 'Shared study'),
      errorState('This link is incomplete. Ask the sender for the full link.'));
    return;
  }
  await renderViewer(ctx, shareSource(token), true);
}

async function renderViewer(ctx: RouteContext, source: Source, shared: boolean): Promise<void> {
  const root = h('div', { class: 'viewer-page' });
  ctx.outlet.append(root);
  root.append(spinner('Opening the study…'));
  // dwv's chunk (about 900 kB) loads while the manifest and the first series' list of files
  // are asked for, rather than before: the first image is what a person waits for.
  const viewerModule = import('../viewer/dwv-viewer');
  viewerModule.catch(() => {}); // reported below, once the manifest is in
  let manifest: Manifest;
  let DicomViewer: typeof import('../viewer/dwv-viewer').DicomViewer;
  let first: SeriesEntry | undefined;
  let firstListing: ReturnType<typeof seriesInstances> | undefined;
  try {
    manifest = await source.manifest(true);
    first = manifest.series.find((se) => (se.instance_count ?? 1) > 0) ?? manifest.series[0];
    const firstId = first?.series_id;
    firstListing = firstId ? seriesInstances((t) => source.page(firstId, t)) : undefined;
    firstListing?.catch(() => {}); // reported when the series opens
    ({ DicomViewer } = await viewerModule);
  } catch (err) {
    const gone = err instanceof ApiError && err.status === 404;
    const preparing = err instanceof ApiError && err.code === 'copy_preparing';
    root.replaceChildren(h('h1', {}, shared ? 'Shared study' : 'Viewer'),
      errorState(preparing ? 'The de-identified copy shared with you is still being prepared. Try again in a few minutes.'
        : gone ? (shared ? 'This link has expired, was revoked, or has been used up. Ask the sender for a new one.'
        : 'This study does not exist or was deleted.') : describeError(err)));
    return;
  }
  const st = manifest.study;
  const status = h('p', { class: 'viewer-status', role: 'status', 'data-testid': 'viewer-status' });
  const progress = h('progress', { max: 100, value: 0, 'aria-label': 'Loading images', hidden: true });
  const loadCount = h('p', { class: 'muted load-count', 'data-testid': 'viewer-load-count' });
  const notice = h('p', { class: 'notice', hidden: true, role: 'alert' });
  const expiry = h('p', { class: 'muted expiry', 'data-testid': 'link-expiry' });
  const slider = h('input', { type: 'range', min: 0, max: 0, value: 0, 'aria-label': 'Image in series',
    disabled: true });
  const viewer = new DicomViewer({
    onProgress: (p) => { progress.hidden = p >= 100; progress.value = p; },
    onCount: (c) => {
      // Loaded: every image held is in (again false when the held window moves on).
      root.dataset.loaded = String(c.loaded + c.failed >= c.held);
      loadCount.textContent = `Loaded ${c.loaded} of ${c.held} images` + (c.held < c.total
        ? ` (images ${c.window[0] + 1}–${c.window[1]} of ${c.total} are held in memory; the rest load as you move through the series)` : '')
        + (c.failed ? `; ${c.failed} could not be shown` : '');
    },
    onLoaded: () => {
      progress.hidden = true;
      root.dataset.loaded = 'true';
      announce('Images loaded.');
    },
    onError: (m) => { notice.hidden = false; notice.textContent = `Some images could not be shown: ${m}`; },
    onChange: (s) => {
      slider.max = String(Math.max(0, s.slices - 1));
      slider.value = String(s.slice);
      slider.disabled = s.slices <= 1;
      status.textContent = `Image ${s.slice + 1} of ${s.slices}` + (s.pending ? ' (loading…)' : '') + (s.width !== undefined
        ? ` · Window ${Math.round(s.width)} / Level ${Math.round(s.center ?? 0)}` : '');
      root.dataset.wl = s.width !== undefined ? `${Math.round(s.center ?? 0)}/${Math.round(s.width)}` : '';
    },
  });
  slider.addEventListener('input', () => viewer.goTo(Number(slider.value)));
  ctx.signal.addEventListener('abort', () => viewer.destroy());

  const toolButtons: HTMLButtonElement[] = [];
  const tool = (name: Tool, label: string) => {
    const b = h('button', { type: 'button', 'aria-pressed': name === 'WindowLevel' ? 'true' : 'false',
      'data-tool': name, onclick: () => {
        viewer.setTool(name);
        for (const other of toolButtons) other.setAttribute('aria-pressed', String(other === b));
      } }, label);
    toolButtons.push(b);
    return b;
  };
  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Viewer tools' },
    tool('WindowLevel', 'Window/level'), tool('ZoomAndPan', 'Zoom/pan'), tool('Scroll', 'Scroll'),
    h('span', { class: 'sep', 'aria-hidden': 'true' }),
    h('button', { type: 'button', onclick: () => viewer.adjustWindow(0, 0.8), 'data-testid': 'more-contrast' }, 'More contrast'),
    h('button', { type: 'button', onclick: () => viewer.adjustWindow(0, 1.25) }, 'Less contrast'),
    h('button', { type: 'button', onclick: () => viewer.adjustWindow(-1, 1) }, 'Brighter'),
    h('button', { type: 'button', onclick: () => viewer.adjustWindow(1, 1) }, 'Darker'),
    h('button', { type: 'button', onclick: () => viewer.zoom(0.2) }, 'Zoom in'),
    h('button', { type: 'button', onclick: () => viewer.zoom(-0.2) }, 'Zoom out'),
    h('button', { type: 'button', onclick: () => viewer.resetView() }, 'Reset'));

  const thumbs = h('ul', { class: 'series-thumbs', 'aria-label': 'Series' });
  let selected: string | null = null;

  const renderThumbs = () => {
    thumbs.replaceChildren(...manifest.series.map((se: SeriesEntry) => {
      const label = `${se.Modality ?? ''} ${se.SeriesDescription || `Series ${se.SeriesNumber ?? ''}`}`.trim();
      return h('li', {}, h('button', { type: 'button', class: 'series-thumb', 'data-series': se.series_id,
        'aria-current': se.series_id === selected ? 'true' : 'false',
        onclick: () => void openSeries(se) },
      se.preview.url ? h('img', { src: se.preview.url, alt: '', referrerpolicy: 'no-referrer' })
        : h('span', { class: 'no-preview', 'aria-hidden': 'true' }, se.Modality ?? '?'),
      h('span', { class: 'label' }, label),
      h('span', { class: 'count' }, `${se.instance_count ?? '?'} image${se.instance_count === 1 ? '' : 's'}`)));
    }));
  };

  let refreshTimer = 0;
  const scheduleRefresh = () => {
    window.clearTimeout(refreshTimer);
    expiry.textContent = `Secure links valid until ${formatDateTime(manifest.expires_at)}` +
      (source.autoRefresh ? ' (renewed automatically).' : '.');
    if (shared && manifest.share) {
      expiry.textContent += ` Shared link expires ${formatDateTime(manifest.share.expires_at)}.`;
    }
    if (!source.autoRefresh) return;
    refreshTimer = window.setTimeout(async () => {
      try {
        manifest = await source.manifest(true);
        renderThumbs();
        scheduleRefresh();
      } catch (err) {
        notice.hidden = false;
        notice.textContent = `The secure links could not be renewed: ${describeError(err)}`;
      }
    }, refreshDelayMs(manifest));
  };
  ctx.signal.addEventListener('abort', () => window.clearTimeout(refreshTimer));

  /** Show a series; `listing` is its list of files when already asked for. */
  const openSeries = async (se: SeriesEntry, listing?: ReturnType<typeof seriesInstances>) => {
    selected = se.series_id;
    renderThumbs();
    notice.hidden = true;
    root.dataset.loaded = 'false';
    try {
      if (!listing && Date.parse(manifest.expires_at) - Date.now() < 10_000) {
        manifest = await source.manifest(true);
        scheduleRefresh();
      }
      const { instances } = await (listing ?? seriesInstances((t) => source.page(se.series_id, t)));
      const usable = instances.filter((i: InstanceEntry) => i.url && canDecode(i.TransferSyntaxUID));
      const skipped = instances.filter((i) => i.url && !canDecode(i.TransferSyntaxUID));
      if (skipped.length) {
        const names = [...new Set(skipped.map((i) => TRANSFER_SYNTAX_NAMES[i.TransferSyntaxUID ?? ''] ?? i.TransferSyntaxUID))];
        notice.hidden = false;
        notice.textContent = `${skipped.length} image${skipped.length === 1 ? '' : 's'} of this series use a compression the browser viewer cannot decode (${names.join(', ')}); the series preview shows one of them.`;
      }
      if (!usable.length) {
        if (!skipped.length) {
          notice.hidden = false;
          notice.textContent = 'This series has no images to show (for example a report or a waveform).';
        }
        return;
      }
      viewer.load(usable.map((i) => ({ url: i.url!, transferSyntax: i.TransferSyntaxUID, id: i.instance_id,
        position: i.ImagePositionPatient, orientation: i.ImageOrientationPatient, rows: i.Rows, columns: i.Columns })));
      viewer.element.focus({ preventScroll: true });
    } catch (err) {
      notice.hidden = false;
      notice.textContent = err instanceof ApiError && err.status === 404 && shared
        ? 'This link has expired or was revoked.' : `The images could not be loaded: ${describeError(err)}`;
    }
  };

  root.replaceChildren(
    h('div', { class: 'page-head' },
      h('h1', {}, st.StudyDescription || (shared ? 'Shared study' : 'Untitled study')),
      shared ? null : h('a', { class: 'button', href: `/studies/${manifest.study_id}`, 'data-link': true }, 'Study details'),
      // The recipient's OHIF: the share's token and view go along in this tab's storage.
      shared && typeof st.StudyInstanceUID === 'string' && st.StudyInstanceUID
        ? h('a', { class: 'button', href: ohifUrl(st.StudyInstanceUID, true), 'data-testid': 'open-ohif' },
          'Open in OHIF') : null),
    // A de-identified copy has no patient and shifted dates: say so rather than "– · –".
    manifest.deidentified
      ? h('p', { class: 'patient', 'data-testid': 'patient-line' }, 'De-identified patient')
      : h('p', { class: 'patient', 'data-testid': 'patient-line' }, formatPersonName(st.PatientName),
        st.PatientID ? ` · ID ${st.PatientID}` : '', ` · ${formatDicomDate(st.StudyDate)}`),
    shared ? h('p', { class: 'notice' }, 'You are viewing a study shared with you. Only this study is visible through this link.') : '',
    manifest.deidentified ? deidentifiedNotice(manifest.left_out) : '',
    // What opening a share records about the recipient (issue 16: the owner sees the coarse values).
    shared ? h('p', { class: 'muted', 'data-testid': 'share-recorded' }, 'Opening this link records the time, your IP address and your browser. ',
      'The person who shared it sees the time, your network (your IP address with its last part removed) and your browser\'s name; ',
      'the full IP address and browser details are kept for 90 days for security and shown to no one.') : '',
    expiry,
    h('div', { class: 'viewer-layout' },
      h('nav', { class: 'series-panel', 'aria-label': 'Series' }, thumbs),
      h('div', { class: 'viewer-main' }, toolbar, notice, progress,
        h('div', { class: 'viewer-stage' }, viewer.element), slider, status, loadCount,
        h('p', { class: 'hint' }, 'Drag to change window/level (or zoom/pan with that tool); mouse wheel or arrow keys move through the images.'))));
  renderThumbs();
  scheduleRefresh();
  if (first) void openSeries(first, firstListing);
  else notice.hidden = false, notice.textContent = 'This study has no series yet.';
}
