// Viewer manifests from sign_link: cached until shortly before their URLs expire, so a
// list of studies does not mint a new manifest each time it is shown.
import { api } from './api';

export interface SeriesEntry {
  series_id: string;
  SeriesInstanceUID?: string;
  Modality?: string;
  SeriesNumber?: number | string;
  SeriesDescription?: string;
  BodyPartExamined?: string;
  instance_count?: number;
  preview: { status: string; url?: string; expires_at?: string };
}

export interface Manifest {
  study_id: string;
  study: Record<string, any>;
  series: SeriesEntry[];
  issued_at: string;
  expires_at: string;
  ttl_seconds: number;
  series_page_size: number;
  view?: string;
  share?: { expires_at: string; max_views: number | null; views: number };
  /** A de-identified share's copy, and what it left out (reason -> count). */
  deidentified?: boolean;
  left_out?: Record<string, number>;
}

export interface InstanceEntry {
  instance_id: string;
  url: string | null;
  InstanceNumber?: number | string;
  SliceLocation?: number | string;
  ImagePositionPatient?: (number | string)[];
  ImageOrientationPatient?: (number | string)[];
  NumberOfFrames?: number | string;
  TransferSyntaxUID?: string;
  Rows?: number;
  Columns?: number;
  SOPClassUID?: string;
}

export interface SeriesPage {
  series_id: string;
  instances: InstanceEntry[];
  expires_at: string;
  next_page_token: string | null;
}

/** Refresh this long before expiry (a fifth of the lifetime, at least 30 s). */
export function refreshDelayMs(m: Pick<Manifest, 'expires_at' | 'ttl_seconds'>, now = Date.now()): number {
  const expires = Date.parse(m.expires_at);
  const margin = Math.max(30_000, (m.ttl_seconds * 1000) / 5);
  return Math.max(5_000, expires - margin - now);
}

export function isFresh(m: Pick<Manifest, 'expires_at' | 'ttl_seconds'>, now = Date.now()): boolean {
  return refreshDelayMs(m, now) > 5_000;
}

const cache = new Map<string, Manifest>();
const inflight = new Map<string, Promise<Manifest>>();

export function ownerManifest(studyId: string, force = false): Promise<Manifest> {
  const cached = cache.get(studyId);
  if (!force && cached && isFresh(cached)) return Promise.resolve(cached);
  const pending = inflight.get(studyId);
  if (!force && pending) return pending;
  const p = api<Manifest>('/links/manifest', { method: 'POST', body: { study_id: studyId } })
    .then((m) => { cache.set(studyId, m); return m; })
    .finally(() => inflight.delete(studyId));
  inflight.set(studyId, p);
  return p;
}

export function forgetManifest(studyId?: string): void {
  if (studyId) cache.delete(studyId);
  else cache.clear();
}

export function shareManifest(token: string): Promise<Manifest> {
  return api<Manifest>('/links/share/manifest', { method: 'POST', body: { token }, auth: false });
}

/** Every instance of a series, page by page, in viewing order. */
export async function seriesInstances(fetchPage: (pageToken: string | null) => Promise<SeriesPage>
): Promise<{ instances: InstanceEntry[]; expiresAt: string }> {
  const all: InstanceEntry[] = [];
  let token: string | null = null;
  let expiresAt = '';
  do {
    const page = await fetchPage(token);
    all.push(...page.instances);
    expiresAt = expiresAt && expiresAt < page.expires_at ? expiresAt : page.expires_at;
    token = page.next_page_token;
  } while (token);
  return { instances: sortInstances(all), expiresAt };
}

function num(v: unknown): number | null {
  const n = typeof v === 'number' ? v : parseFloat(String(v ?? ''));
  return Number.isFinite(n) ? n : null;
}

/** Viewing order: position along the slice normal, then SliceLocation, then InstanceNumber. */
export function sortInstances(list: InstanceEntry[]): InstanceEntry[] {
  const key = (i: InstanceEntry): [number, number, number] => {
    const pos = i.ImagePositionPatient?.map(num);
    const ori = i.ImageOrientationPatient?.map(num);
    let along = NaN;
    if (pos && ori && pos.length === 3 && ori.length === 6 && [...pos, ...ori].every((v) => v !== null)) {
      const [a, b, c, d, e, f] = ori as number[];
      const n = [b * f - c * e, c * d - a * f, a * e - b * d];
      along = n[0] * (pos[0] as number) + n[1] * (pos[1] as number) + n[2] * (pos[2] as number);
    }
    return [along, num(i.SliceLocation) ?? NaN, num(i.InstanceNumber) ?? NaN];
  };
  return [...list].sort((x, y) => {
    const kx = key(x), ky = key(y);
    for (let j = 0; j < 3; j += 1) {
      const a = kx[j], b = ky[j];
      if (Number.isNaN(a) || Number.isNaN(b)) continue;
      if (a !== b) return a - b;
    }
    return x.instance_id.localeCompare(y.instance_id);
  });
}
