import { api, ApiError, describeError } from '../api';
import { track } from '../analytics';
import { formatBytes, formatDicomDate, formatPersonName } from '../format';
import { ownerManifest } from '../manifests';
import type { RouteContext } from '../router';
import { FILTERS, MODALITIES, filtersOfState, hasFilters, searchState, validateFilters,
  type FilterName, type Filters } from '../search';
import { announce, emptyState, errorState, field, h, spinner } from '../ui';
import { uploadManager } from './upload';

export interface StudyRow {
  id: string;
  PatientName?: unknown;
  PatientID?: string;
  PatientBirthDate?: string;
  PatientSex?: string;
  StudyDate?: string;
  AccessionNumber?: string;
  StudyDescription?: string;
  modalities?: string[];
  ModalitiesInStudy?: string[] | string;
  series_count?: number;
  instance_count?: number;
  total_bytes?: number;
  preview?: { status?: string } | null;
}

const LABELS: Record<FilterName, string> = {
  name: 'Patient name', patient_id: 'Patient ID', date_from: 'Study date from',
  date_to: 'Study date to', modality: 'Modality', accession: 'Accession number',
  keyword: 'Description contains',
};

const PAGE = 20;

/** Load a preview thumbnail when its row scrolls into view (one manifest per study). */
const previewObserver = typeof IntersectionObserver !== 'undefined'
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      previewObserver?.unobserve(entry.target);
      void loadPreview(entry.target as HTMLElement);
    }
  }, { rootMargin: '200px' }) : null;

async function loadPreview(box: HTMLElement): Promise<void> {
  const id = box.dataset.study!;
  try {
    const m = await ownerManifest(id);
    const url = m.series.find((s) => s.preview.url)?.preview.url;
    if (!url) {
      box.replaceChildren(h('span', { class: 'no-preview' }, 'No preview'));
      return;
    }
    const img = h('img', { src: url, alt: 'Study preview', loading: 'lazy', decoding: 'async',
      referrerpolicy: 'no-referrer' });
    box.replaceChildren(img);
  } catch (err) {
    const restricted = err instanceof ApiError && err.code === 'restricted';
    box.replaceChildren(h('span', { class: 'no-preview' }, restricted ? 'Restricted' : 'No preview'));
  }
}

function modalitiesOf(s: StudyRow): string {
  const m = s.modalities?.length ? s.modalities : s.ModalitiesInStudy;
  return Array.isArray(m) ? m.join(', ') : (m ?? '–');
}

/** Counts and preview are computed a little after ingest (series settle). */
export function settled(s: StudyRow): boolean {
  return !!s.series_count;
}

function studyCard(s: StudyRow): HTMLElement {
  const thumb = h('div', { class: 'thumb', 'data-study': s.id, 'aria-hidden': 'true' },
    h('span', { class: 'no-preview' }, s.preview?.status === 'ready' ? '' : 'No preview'));
  if (s.preview?.status === 'ready') previewObserver?.observe(thumb);
  const title = s.StudyDescription || 'Untitled study';
  return h('li', { class: 'study-card', 'data-testid': 'study-row', 'data-study-id': s.id },
    thumb,
    h('div', { class: 'study-info' },
      h('h3', {}, h('a', { href: `/studies/${s.id}`, 'data-link': true }, title)),
      h('p', { class: 'patient' }, formatPersonName(s.PatientName),
        s.PatientID ? ` · ID ${s.PatientID}` : '', s.PatientSex ? ` · ${s.PatientSex}` : ''),
      h('p', { class: 'meta' }, `${formatDicomDate(s.StudyDate)} · `,
        settled(s) ? `${modalitiesOf(s)} · ${s.series_count} series · ${s.instance_count ?? '–'} images · ${formatBytes(s.total_bytes)}`
          : 'Indexing: counts and preview appear shortly',
        s.AccessionNumber ? ` · Acc. ${s.AccessionNumber}` : '')),
    h('div', { class: 'study-actions' },
      h('a', { class: 'button primary', href: `/viewer/${s.id}`, 'data-link': true,
        // The visible words start the accessible name (speech control users say what they see).
        'aria-label': `Open viewer: ${title}` }, 'Open viewer'),
      h('a', { class: 'button', href: `/studies/${s.id}`, 'data-link': true,
        'aria-label': `Details, sharing and deletion of ${title}` }, 'Details')));
}

/** The studies page; ``go`` navigates with a history state (the search's, never in the URL). */
export function renderStudies(ctx: RouteContext, go: (href: string, state?: unknown) => void): void {
  // Filters live in memory, keyed from history.state; an old URL with filters in its query
  // (a bookmark) is shown without them and loses them from the address bar.
  if (FILTERS.some((key) => ctx.query.has(key))) history.replaceState(null, '', '/studies');
  const filters = filtersOfState(history.state);
  const inputs = {} as Record<FilterName, HTMLInputElement | HTMLSelectElement>;
  const errorsBox: Partial<Record<FilterName, HTMLElement>> = {};
  const fields = FILTERS.map((key) => {
    let input: HTMLInputElement | HTMLSelectElement;
    if (key === 'modality') {
      input = h('select', { name: key }, h('option', { value: '' }, 'Any'),
        ...MODALITIES.map((m) => h('option', { value: m, selected: filters.modality === m }, m)));
    } else {
      input = h('input', { name: key, type: key.startsWith('date') ? 'date' : 'search',
        value: filters[key] ?? '', autocomplete: 'off' });
    }
    inputs[key] = input;
    const wrap = field(LABELS[key], input);
    const err = h('p', { class: 'field-error', id: `${key}-error`, role: 'alert' });
    errorsBox[key] = err;
    wrap.append(err);
    return wrap;
  });
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Search studies' },
    h('div', { class: 'search-grid' }, fields),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', onclick: () => go('/studies') }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next: Filters = {};
    for (const key of FILTERS) {
      const v = inputs[key].value.trim();
      if (v) next[key] = v;
    }
    const problems = validateFilters(next);
    let first: HTMLElement | null = null;
    for (const key of FILTERS) {
      errorsBox[key]!.textContent = problems[key] ?? '';
      inputs[key].setAttribute('aria-invalid', problems[key] ? 'true' : 'false');
      if (problems[key]) inputs[key].setAttribute('aria-errormessage', `${key}-error`);
      if (problems[key] && !first) first = inputs[key];
    }
    if (first) { first.focus(); return; }
    track('search_used');
    go('/studies', searchState(next));
  });

  const results = h('section', { 'aria-labelledby': 'results-title', 'aria-busy': 'false' });
  const list = h('ul', { class: 'study-list', 'data-testid': 'study-list' });
  const status = h('p', { class: 'result-count', role: 'status' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Show more studies');
  let cursor: string | null = null;
  let loaded = 0;
  let retries = 0;
  let retryTimer = 0;
  ctx.signal.addEventListener('abort', () => window.clearTimeout(retryTimer));
  // Studies appear a little after an upload finishes (indexing): while this session has
  // uploads and the list is still empty or short of them, look again shortly.
  const recentUploads = () => uploadManager().items.some((it) => it.state === 'processing' || it.state === 'done');

  const load = async (append: boolean) => {
    results.setAttribute('aria-busy', 'true');
    more.disabled = true;
    const loading = spinner('Loading studies…');
    if (!append) list.replaceChildren();
    results.append(loading);
    try {
      // POST: the filters (names, IDs) go in the body, never into a request URL.
      const page = await api<{ studies: StudyRow[]; next_cursor: string | null }>('/studies/search', {
        method: 'POST', body: { ...filters, limit: PAGE, cursor: append ? cursor ?? undefined : undefined },
        signal: ctx.signal });
      cursor = page.next_cursor;
      if (!append) loaded = 0;
      loaded += page.studies.length;
      const waiting = page.studies.length === 0 ? !hasFilters(filters)
        : page.studies.some((st) => !settled(st));
      if (!append && recentUploads() && retries < 20 && waiting) {
        retries += 1;
        retryTimer = window.setTimeout(() => void load(false), 3000);
      }
      list.append(...page.studies.map(studyCard));
      more.hidden = !cursor;
      if (loaded === 0) {
        list.replaceChildren(hasFilters(filters)
          ? emptyState('No studies match', 'Try fewer filters, a shorter part of the name, or a wider date range.',
            h('a', { class: 'button', href: '/studies', 'data-link': true }, 'Show all studies'))
          : recentUploads()
            ? emptyState('Your studies are being indexed', 'Uploaded studies appear here within a minute. This page checks again by itself.')
            : emptyState('No studies yet', 'Upload DICOM files or a ZIP of a CD export to see your studies here.',
              h('a', { class: 'button primary', href: '/upload', 'data-link': true }, 'Upload studies')));
        status.textContent = '';
      } else {
        status.textContent = `${loaded} stud${loaded === 1 ? 'y' : 'ies'} shown${cursor ? ', more available' : ''}.`;
      }
      announce(status.textContent || 'No studies found.');
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      const text = err instanceof ApiError && err.status === 400
        ? `Check the search: ${err.message}.` : `Your studies could not be loaded. ${describeError(err)}`;
      list.replaceChildren(h('li', {}, errorState(text, () => void load(append))));
    } finally {
      loading.remove();
      results.setAttribute('aria-busy', 'false');
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void load(true));
  results.append(h('h2', { id: 'results-title', class: 'sr-only' }, 'Results'), status, list, more);
  ctx.outlet.append(h('div', { class: 'page-head' }, h('h1', {}, 'Your studies'),
    h('a', { class: 'button primary', href: '/upload', 'data-link': true }, 'Upload')), form, results);
  track('study_list_viewed');
  void load(false);
}
