import { track } from '../analytics';
import { formatBytes, formatEta, formatSpeed } from '../format';
import type { RouteContext } from '../router';
import { announce, h } from '../ui';
import { filesFromDataTransfer, filesFromInput } from '../upload/files';
import { STATUS_TEXT, UPLOAD_STATUS_TEXT, UploadManager, type UploadItem } from '../upload/manager';

// One queue for the whole session: uploads go on while the user looks at other pages.
let manager: UploadManager | null = null;
export function uploadManager(): UploadManager {
  manager ??= new UploadManager(3);
  return manager;
}
export function resetUploads(): void {
  manager?.dispose();
  manager = null;
}

const STATE_TEXT: Record<string, string> = {
  queued: 'Waiting',
  starting: 'Starting',
  uploading: 'Uploading',
  processing: 'Processing',
  done: 'Done',
  failed: 'Failed',
  skipped: 'Not uploaded',
  cancelled: 'Cancelled',
};

function progressBar(value: number, max: number, label: string): HTMLProgressElement {
  return h('progress', { value: Math.min(value, max), max: Math.max(max, 1), 'aria-label': label });
}

function resultList(item: UploadItem): HTMLElement | null {
  if (!item.results.length) return null;
  const rows = item.results.map((r) => h('li', { class: `result result-${r.status}`, 'data-status': r.status },
    h('span', { class: 'badge' }, STATUS_TEXT[r.status] ?? r.status),
    h('span', { class: 'name' }, r.name || '(unnamed)'),
    r.message ? h('span', { class: 'why' }, r.message) : null));
  const counts: Record<string, number> = {};
  for (const r of item.results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  const summary = Object.entries(counts).map(([k, v]) => `${v} ${(STATUS_TEXT[k] ?? k).toLowerCase()}`).join(', ');
  return h('details', { class: 'results', open: item.results.length <= 20 },
    h('summary', {}, `${item.results.length} file${item.results.length === 1 ? '' : 's'}: ${summary}`),
    h('ul', { class: 'result-list' }, rows));
}

function itemRow(item: UploadItem, mgr: UploadManager): HTMLElement {
  const pct = item.size ? Math.floor((Math.min(item.sent, item.size) / item.size) * 100) : 0;
  const status = item.state === 'processing' || item.state === 'done'
    ? UPLOAD_STATUS_TEXT[item.serverStatus ?? 'pending'] ?? item.serverStatus
    : STATE_TEXT[item.state];
  return h('li', { class: `upload-item state-${item.state}`, 'data-testid': 'upload-item',
    'data-state': item.state, 'data-server-status': item.serverStatus ?? '' },
  h('div', { class: 'upload-head' },
    h('span', { class: 'name' }, item.picked.path),
    h('span', { class: 'size' }, formatBytes(item.size)),
    h('span', { class: 'status' }, status ?? ''),
    ['queued', 'starting', 'uploading'].includes(item.state)
      ? h('button', { type: 'button', class: 'small', onclick: () => mgr.cancel(item),
        'aria-label': `Cancel ${item.picked.path}` }, 'Cancel') : null,
    ['failed', 'cancelled'].includes(item.state)
      ? h('button', { type: 'button', class: 'small', onclick: () => mgr.retry(item),
        'aria-label': `Retry ${item.picked.path}` }, 'Retry') : null),
  ['uploading', 'starting', 'queued'].includes(item.state)
    ? h('div', { class: 'bar' }, progressBar(item.sent, item.size, `Upload of ${item.picked.path}`),
      h('span', { class: 'pct' }, `${pct}%`)) : null,
  item.error ? h('p', { class: item.state === 'skipped' ? 'why' : 'form-error' }, item.error) : null,
  resultList(item));
}

export function renderUpload(ctx: RouteContext): void {
  const mgr = uploadManager();
  const fileInput = h('input', { type: 'file', multiple: true, class: 'sr-only', id: 'pick-files',
    accept: '.dcm,.dicom,.zip,application/dicom,application/zip,*/*', 'data-testid': 'file-input' });
  const folderInput = h('input', { type: 'file', multiple: true, class: 'sr-only', id: 'pick-folder' });
  folderInput.setAttribute('webkitdirectory', '');
  const add = (files: ReturnType<typeof filesFromInput>) => {
    if (!files.length) return;
    mgr.add(files);
    track('upload_started');
    announce(`${files.length} file${files.length === 1 ? '' : 's'} added to the upload queue.`);
  };
  fileInput.addEventListener('change', () => { add(filesFromInput(fileInput.files)); fileInput.value = ''; });
  folderInput.addEventListener('change', () => { add(filesFromInput(folderInput.files)); folderInput.value = ''; });

  const zone = h('div', { class: 'dropzone', 'data-testid': 'dropzone' },
    h('p', { class: 'big' }, 'Drop DICOM files, folders or ZIP archives here'),
    h('p', {}, 'or ',
      h('label', { for: 'pick-files', class: 'button', tabindex: 0 }, 'Choose files'), ' ',
      h('label', { for: 'pick-folder', class: 'button', tabindex: 0 }, 'Choose a folder')),
    h('p', { class: 'hint' }, 'Files go straight to encrypted storage, resumably. Large archives keep going if your connection drops briefly.'),
    fileInput, folderInput);
  for (const label of Array.from(zone.querySelectorAll('label.button'))) {
    label.addEventListener('keydown', (e) => {
      const k = (e as KeyboardEvent).key;
      if (k === 'Enter' || k === ' ') { e.preventDefault(); (label as HTMLLabelElement).control?.click(); }
    });
  }
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer) add(await filesFromDataTransfer(e.dataTransfer));
  });

  const overall = h('section', { class: 'overall', 'aria-labelledby': 'overall-title', 'data-testid': 'overall' });
  const list = h('ul', { class: 'upload-list', 'aria-label': 'Uploads' });
  const clearBtn = h('button', { type: 'button', onclick: () => mgr.clearFinished() }, 'Clear finished');
  const rowCache = new Map<number, { sig: string; el: HTMLElement }>();

  const render = () => {
    const t = mgr.totals();
    overall.replaceChildren(
      h('h2', { id: 'overall-title' }, 'Overall'),
      progressBar(t.sent, t.bytes, 'Overall upload progress'),
      h('p', { class: 'stats', 'data-testid': 'overall-stats' },
        `${formatBytes(t.sent)} of ${formatBytes(t.bytes)} · ${t.files} file${t.files === 1 ? '' : 's'}`,
        t.active ? ` · ${formatSpeed(t.speed)} · ${formatEta(t.eta)}` : '',
        t.failed ? ` · ${t.failed} failed` : ''));
    overall.hidden = mgr.items.length === 0;
    clearBtn.hidden = mgr.items.length === 0;
    // Rows are rebuilt only when their state changes (focus and open details survive);
    // progress is updated in place.
    const rows = mgr.items.map((it) => {
      const sig = JSON.stringify([it.state, it.serverStatus, it.error, it.results.length,
        it.results.map((r) => r.status).join()]);
      let cached = rowCache.get(it.key);
      if (!cached || cached.sig !== sig) {
        cached = { sig, el: itemRow(it, mgr) };
        rowCache.set(it.key, cached);
      }
      const bar = cached.el.querySelector('progress');
      const pct = cached.el.querySelector('.pct');
      if (bar) bar.value = Math.min(it.sent, it.size);
      if (pct) pct.textContent = `${it.size ? Math.floor((Math.min(it.sent, it.size) / it.size) * 100) : 0}%`;
      return cached.el;
    });
    for (const key of [...rowCache.keys()]) {
      if (!mgr.items.some((it) => it.key === key)) rowCache.delete(key);
    }
    if (rows.length !== list.children.length || rows.some((r, i) => list.children[i] !== r)) {
      list.replaceChildren(...rows);
    }
  };
  const off = mgr.onChange(render);
  const tick = window.setInterval(render, 1000);
  ctx.signal.addEventListener('abort', () => { off(); window.clearInterval(tick); });
  render();

  ctx.outlet.append(h('h1', {}, 'Upload studies'), zone, overall, clearBtn, list,
    h('p', {}, 'Finished uploads appear in ', h('a', { href: '/studies', 'data-link': true }, 'your studies'), '.'));
}
