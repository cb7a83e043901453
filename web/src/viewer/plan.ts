// What the viewer loads, in which order and how much of a series it holds at once: pure
// functions (unit-tested), used by dwv-viewer.ts.

/** Memory the viewer gives one series' decoded pixels: an eighth of the device's memory as
 *  the browser reports it (navigator.deviceMemory, GiB, at most 8), between 32 MiB and
 *  1 GiB; 512 MiB when the browser does not say. A 512x512 16-bit slice takes 512 KiB. */
export function pixelBudgetBytes(deviceMemoryGiB: number | undefined): number {
  const MiB = 1024 * 1024;
  if (!deviceMemoryGiB || !Number.isFinite(deviceMemoryGiB)) return 512 * MiB;
  return Math.min(1024 * MiB, Math.max(32 * MiB, (deviceMemoryGiB * 1024 * MiB) / 8));
}

/** How many slices of `sliceBytes` the budget holds (at least one). */
export function sliceCapacity(sliceBytes: number, budgetBytes: number): number {
  return Math.max(1, Math.floor(budgetBytes / Math.max(1, sliceBytes)));
}

/** The slices [start, end) held when the viewer is at `target`: the whole series when it
 *  fits, otherwise `capacity` slices with `target` near the edge it was entered from, so that
 *  moving on in the same direction finds the most slices ahead (`direction` +1 forward, -1
 *  backward) and a few are kept behind. */
export function windowAround(total: number, target: number, capacity: number, direction: 1 | -1 = 1
): [number, number] {
  if (total <= capacity) return [0, total];
  const behind = Math.min(Math.floor(capacity / 8), 16);
  let start = direction > 0 ? target - behind : target + behind + 1 - capacity;
  start = Math.max(0, Math.min(start, total - capacity));
  return [start, start + capacity];
}

/** The pending index to fetch next: the nearest to `current`, the next one forward on a tie
 *  (people read a series forward). */
export function nearestPending(pending: Iterable<number>, current: number): number | undefined {
  let best: number | undefined;
  for (const i of pending) {
    if (best === undefined) { best = i; continue; }
    const d = Math.abs(i - current), bd = Math.abs(best - current);
    if (d < bd || (d === bd && i > best)) best = i;
  }
  return best;
}

type Vec = [number, number, number];

function numbers(values: unknown, length: number): number[] | null {
  if (!Array.isArray(values) || values.length !== length) return null;
  const out = values.map((v) => (typeof v === 'number' ? v : parseFloat(String(v))));
  return out.every(Number.isFinite) ? out : null;
}

/** Where each slice of a window lies, from the manifest's ImagePositionPatient: positions
 *  that go strictly forward along the slice normal of one shared orientation. Otherwise
 *  (positions missing, repeated, or orientations that differ) slices are placed `spacing` mm
 *  apart along `normal` from `origin`, in viewing order, so that the series still scrolls. */
export function sliceOrigins(entries: { ImagePositionPatient?: unknown; ImageOrientationPatient?: unknown }[],
  fallback: { origin: Vec; normal: Vec; spacing: number }): { origins: Vec[]; measured: boolean } {
  const positions = entries.map((e) => numbers(e.ImagePositionPatient, 3) as Vec | null);
  const orientations = entries.map((e) => numbers(e.ImageOrientationPatient, 6));
  const o0 = orientations[0];
  const same = o0 && orientations.every((o) => o && o.every((v, k) => Math.abs(v - o0[k]) < 1e-4));
  if (same && positions.every((p) => p)) {
    const [a, b, c, d, e, f] = o0;
    const n: Vec = [b * f - c * e, c * d - a * f, a * e - b * d];
    const along = (positions as Vec[]).map((p) => p[0] * n[0] + p[1] * n[1] + p[2] * n[2]);
    if (along.every((v, k) => k === 0 || v - along[k - 1] > 1e-3)) {
      return { origins: positions as Vec[], measured: true };
    }
  }
  const { origin, normal, spacing } = fallback;
  return { origins: entries.map((_, k) => [origin[0] + normal[0] * spacing * k,
    origin[1] + normal[1] * spacing * k, origin[2] + normal[2] * spacing * k] as Vec), measured: false };
}
