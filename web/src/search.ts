// The search form ↔ the studies API's filters (functions/pacs/studies/filters.py).
// Filters never go into a URL: the page keeps them in memory, keyed from history.state (so
// Back and Forward restore a search within the page's life), and sends them in the body of
// POST /api/studies/search. Request and page URLs end up in logs and browser history.

export const FILTERS = ['name', 'patient_id', 'date_from', 'date_to', 'modality', 'accession',
  'keyword'] as const;
export type FilterName = typeof FILTERS[number];
export type Filters = Partial<Record<FilterName, string>>;

export const MODALITIES = ['CT', 'MR', 'CR', 'DX', 'US', 'NM', 'PT', 'MG', 'XA', 'RF', 'OT', 'SC',
  'SR', 'RTDOSE', 'RTSTRUCT', 'RTPLAN', 'ECG'];

const ISO = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The known, non-empty filters, trimmed and capped (what a search sends). */
export function cleanFilters(raw: Record<string, unknown>): Filters {
  const out: Filters = {};
  for (const key of FILTERS) {
    const v = typeof raw[key] === 'string' ? (raw[key] as string).trim() : '';
    if (v) out[key] = v.slice(0, 128);
  }
  return out;
}

const searches = new Map<string, Filters>();

/** History state for a search: an opaque key of filters held in memory only. */
export function searchState(filters: Filters): { search: string } | null {
  const clean = cleanFilters(filters);
  if (!hasFilters(clean)) return null;
  const key = crypto.randomUUID();
  searches.set(key, clean);
  return { search: key };
}

/** The filters of a history entry (none after a reload, or for an entry without any). */
export function filtersOfState(state: unknown): Filters {
  const key = (state as { search?: unknown } | null)?.search;
  return typeof key === 'string' ? { ...(searches.get(key) ?? {}) } : {};
}

export function isValidDate(value: string): boolean {
  const m = ISO.exec(value) ?? /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1
    && d.getUTCDate() === Number(m[3]);
}

/** Problems a person can fix before asking the server, by field. */
export function validateFilters(filters: Filters): Partial<Record<FilterName, string>> {
  const errors: Partial<Record<FilterName, string>> = {};
  for (const key of ['date_from', 'date_to'] as const) {
    const v = filters[key];
    if (v && !isValidDate(v)) errors[key] = 'Use a date like 2024-01-31.';
  }
  if (filters.date_from && filters.date_to && !errors.date_from && !errors.date_to
    && filters.date_from.replace(/-/g, '') > filters.date_to.replace(/-/g, '')) {
    errors.date_to = 'The end date is before the start date.';
  }
  if (filters.keyword && !filters.keyword.split(/\s+/).some((w) => w.length > 1)) {
    errors.keyword = 'Use a word of two letters or more.';
  }
  return errors;
}

export function hasFilters(filters: Filters): boolean {
  return FILTERS.some((k) => !!filters[k]);
}
