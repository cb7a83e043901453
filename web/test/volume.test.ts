import { describe, expect, it } from 'vitest';
import { Geometry, Image, Index, Point3D, RescaleSlopeAndIntercept, Size, Spacing, WindowLevel } from 'dwv';
import { Volume } from '../src/viewer/volume';

type Vec = [number, number, number];

/** One decoded 4x4 slice as dwv makes it: every pixel `value`, at z, with a rescale and an
 *  optional header window. */
function slice(value: number, z: number, opts: { slope?: number; intercept?: number; wl?: [number, number];
  size?: number; pixels?: Int16Array | Uint8Array; frames?: number } = {}): Image {
  const n = opts.size ?? 4;
  const dims = opts.frames ? [n, n, 1, opts.frames] : [n, n, 1];
  const pixels = opts.pixels ?? new Int16Array(n * n * (opts.frames ?? 1)).fill(value);
  const image = new Image(new Geometry([new Point3D(0, 0, z)], new Size(dims), new Spacing([1, 1, 1])), pixels, [`uid-${z}`]);
  image.setRescaleSlopeAndIntercept(new RescaleSlopeAndIntercept(opts.slope ?? 1, opts.intercept ?? 0));
  const meta: Record<string, unknown> = { numberOfFiles: 1, Modality: 'CT', BitsStored: 16, PixelRepresentation: 1 };
  if (opts.wl) meta.windowPresets = { 'preset-0': { name: 'preset-0', wl: [new WindowLevel(opts.wl[0], opts.wl[1])] } };
  image.setMeta(meta);
  return image;
}

const origins = (n: number): Vec[] => Array.from({ length: n }, (_, k) => [0, 0, 2 * k] as Vec);
const at = (k: number) => new Index([0, 0, k]);
const values = (v: Volume, k: number) => [...v.image.getBuffer().subarray(16 * k, 16 * (k + 1))];

describe('a series volume filled in any order', () => {
  it('puts each slice in its place, whatever the order of arrival', () => {
    const v = new Volume(slice(30, 6), origins(5), ['a', 'b', 'c', 'd', 'e']);
    expect(v.image.getGeometry().getSize().getValues()).toEqual([4, 4, 5]);
    expect(v.image.getGeometry().getSpacing().get(2)).toBe(2);
    for (const k of [3, 0, 4, 1]) v.place(k, slice(10 * (k + 1), 2 * k));
    expect([0, 1, 2, 3, 4].map((k) => v.has(k))).toEqual([true, true, false, true, true]);
    expect(v.loaded).toBe(4);
    expect(values(v, 0)).toEqual(new Array(16).fill(10));
    expect(values(v, 2)).toEqual(new Array(16).fill(0)); // not in yet: black
    expect(values(v, 4)).toEqual(new Array(16).fill(50));
    v.place(3, slice(40, 6));
    expect(v.loaded).toBe(4); // a slice placed twice counts once
    expect(v.sliceBytes).toBe(32);
  });

  it('keeps a rescale per slice once slices differ, and the data range of the slices in', () => {
    const v = new Volume(slice(100, 0, { slope: 1, intercept: -1024 }), origins(3), ['a', 'b', 'c']);
    v.place(0, slice(100, 0, { slope: 1, intercept: -1024 }));
    expect(v.image.isConstantRSI()).toBe(true);
    // The range is that of the slice in, not of the mostly empty buffer (no scan of it).
    expect(v.image.getDataRange()).toEqual({ min: 100, max: 100 });
    expect(v.image.getRescaledDataRange()).toEqual({ min: -924, max: -924 });
    v.place(2, slice(10, 4, { slope: 2, intercept: 5 }));
    expect(v.image.isConstantRSI()).toBe(false);
    expect(v.image.isIdentityRSI()).toBe(false);
    expect(v.image.getRescaleSlopeAndIntercept(at(2)).apply(10)).toBe(25);
    expect(v.image.getRescaleSlopeAndIntercept(at(0)).apply(100)).toBe(-924);
    expect(v.image.getRescaleSlopeAndIntercept(at(1)).apply(100)).toBe(-924); // not in: the first's
    expect(v.image.getDataRange()).toEqual({ min: 10, max: 100 });
    expect(v.image.getRescaledDataRange()).toEqual({ min: -924, max: 25 });
  });

  it('keeps one header window while slices agree, one per slice once they differ', () => {
    const v = new Volume(slice(1, 2, { wl: [40, 400] }), origins(3), ['a', 'b', 'c']);
    const preset = () => (v.image.getMeta().windowPresets as Record<string, { wl: WindowLevel[]; perslice?: boolean }>)['preset-0'];
    v.place(1, slice(1, 2, { wl: [40, 400] }));
    v.place(0, slice(1, 0, { wl: [40, 400] }));
    expect(preset().perslice).toBeUndefined();
    v.place(2, slice(1, 4, { wl: [600, 1600] }));
    expect(preset().perslice).toBe(true);
    expect(preset().wl.map((w) => [w.center, w.width])).toEqual([[40, 400], [40, 400], [600, 1600]]);
  });

  it('says why a slice does not fit', () => {
    const v = new Volume(slice(1, 0), origins(3), ['a', 'b', 'c']);
    expect(v.misfit(slice(1, 2))).toBeNull();
    expect(v.misfit(slice(1, 2, { size: 8 }))).toMatch(/another size/);
    expect(v.misfit(slice(1, 2, { pixels: new Uint8Array(16) }))).toMatch(/another pixel format/);
    expect(v.misfit(slice(1, 2, { frames: 3 }))).toMatch(/multi-frame/);
  });

  it('takes over what another window of the series held', () => {
    const a = new Volume(slice(1, 0), origins(4), ['a', 'b', 'c', 'd']);
    a.place(2, slice(7, 4, { slope: 3, intercept: 0 }));
    a.place(3, slice(9, 6));
    // The next window starts at slice 2 of the first.
    const b = new Volume(a, origins(4).map(([x, y, z]) => [x, y, z + 4] as Vec), ['c', 'd', 'e', 'f']);
    b.copyFrom(a, 2, 0);
    b.copyFrom(a, 3, 1);
    expect(values(b, 0)).toEqual(new Array(16).fill(7));
    expect(values(b, 1)).toEqual(new Array(16).fill(9));
    expect(b.loaded).toBe(2);
    expect(b.image.getRescaleSlopeAndIntercept(at(0)).apply(7)).toBe(21);
    expect(b.image.getDataRange()).toEqual({ min: 7, max: 9 });
  });
});
