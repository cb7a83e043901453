// Formatting for people: sizes, speeds, times left, DICOM dates and names.

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatSpeed(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '–';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "about 3 min left" style, or '–' when unknown. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 1) return 'almost done';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.round((seconds % 3600) / 60);
  return `${hours} h ${minutes} min left`;
}

/** YYYYMMDD → YYYY-MM-DD (ISO, unambiguous across locales). */
export function formatDicomDate(value: string | null | undefined): string {
  if (!value) return '–';
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : value;
}

/** DICOM person name "Family^Given^Middle^Prefix^Suffix" → "Given Middle Family". */
export function formatPersonName(value: unknown): string {
  if (value === null || value === undefined) return '–';
  let text = typeof value === 'string' ? value
    : typeof value === 'object' && value !== null && 'Alphabetic' in value
      ? String((value as { Alphabetic: unknown }).Alphabetic) : String(value);
  text = text.split('=')[0];
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = text.split('^');
  const out = [prefix, given, middle, family, suffix].map((s) => s.trim()).filter(Boolean).join(' ');
  return out || '–';
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

/** Exponentially weighted transfer rate, robust to bursty progress events. */
export class RateMeter {
  private rate = 0;
  private lastBytes = 0;
  private lastTime: number | null = null;
  constructor(private halfLifeMs = 3000) {}

  update(totalBytes: number, now: number): number {
    if (this.lastTime === null) {
      this.lastTime = now;
      this.lastBytes = totalBytes;
      return this.rate;
    }
    const dt = now - this.lastTime;
    if (dt < 200) return this.rate; // too short to measure
    const instant = ((totalBytes - this.lastBytes) * 1000) / dt;
    const alpha = 1 - Math.pow(0.5, dt / this.halfLifeMs);
    this.rate = this.rate === 0 ? instant : this.rate + alpha * (instant - this.rate);
    this.lastTime = now;
    this.lastBytes = totalBytes;
    return this.rate;
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  eta(remainingBytes: number): number | null {
    return this.rate > 0 ? remainingBytes / this.rate : null;
  }
}
