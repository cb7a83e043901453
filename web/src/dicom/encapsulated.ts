// The frames of encapsulated (compressed) pixel data (PS3.5 A.4): a Basic Offset Table
// item, then fragments, a frame being one or more fragments.
import { fragmentsOf, type Element } from './elements';

const SOI = [0xff, 0xd8];

export function encapsulatedFrames(view: DataView, pixelData: Element, frames: number): Uint8Array[] {
  const items = fragmentsOf(view, pixelData);
  if (!items.length) throw new Error('encapsulated pixel data without a basic offset table item');
  const [table, ...fragments] = items;
  const bytes = (f: { start: number; length: number }) =>
    new Uint8Array(view.buffer, view.byteOffset + f.start, f.length);
  if (!fragments.length) throw new Error('encapsulated pixel data without fragments');

  let groups: { start: number; length: number }[][];
  if (frames <= 1) {
    groups = [fragments];
  } else if (table.length >= 4 * frames) {
    // Offsets are from the first byte of the first fragment's item header.
    const base = fragments[0].start - 8;
    const offsets = Array.from({ length: frames }, (_, i) => view.getUint32(table.start + 4 * i, true));
    groups = offsets.map((o, i) => fragments.filter((f) => f.start - 8 - base >= o
      && (i + 1 === frames || f.start - 8 - base < offsets[i + 1])));
  } else if (fragments.length === frames) {
    groups = fragments.map((f) => [f]);
  } else {
    // No usable table and more fragments than frames: a frame starts with a fragment that
    // starts with a start-of-image marker (JPEG, JPEG-LS).
    groups = [];
    for (const f of fragments) {
      const b = bytes(f);
      if (!groups.length || (b[0] === SOI[0] && b[1] === SOI[1])) groups.push([f]);
      else groups[groups.length - 1].push(f);
    }
  }
  if (groups.length !== frames || groups.some((g) => !g.length)) {
    throw new Error(`${frames} frames expected, ${groups.length} found in the pixel data`);
  }
  return groups.map((g) => {
    if (g.length === 1) return bytes(g[0]);
    const out = new Uint8Array(g.reduce((n, f) => n + f.length, 0));
    let offset = 0;
    for (const f of g) {
      out.set(bytes(f), offset);
      offset += f.length;
    }
    return out;
  });
}
