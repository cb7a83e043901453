import { describe, expect, it } from 'vitest';
import { nearestPending, pixelBudgetBytes, sliceCapacity, sliceOrigins, windowAround } from '../src/viewer/plan';

const MiB = 1024 * 1024;

describe('what the viewer holds of a series', () => {
  it('gives a series an eighth of the device memory, within bounds', () => {
    expect(pixelBudgetBytes(undefined)).toBe(512 * MiB);
    expect(pixelBudgetBytes(8)).toBe(1024 * MiB);
    expect(pixelBudgetBytes(4)).toBe(512 * MiB);
    expect(pixelBudgetBytes(0.25)).toBe(32 * MiB);
    expect(pixelBudgetBytes(64)).toBe(1024 * MiB);
  });

  it('holds as many 512x512 CT slices as fit', () => {
    expect(sliceCapacity(512 * 512 * 2, 512 * MiB)).toBe(1024);
    expect(sliceCapacity(512 * 512 * 2, 32 * MiB)).toBe(64);
    expect(sliceCapacity(10 * 1024 * MiB, 32 * MiB)).toBe(1);
  });

  it('holds the whole series when it fits', () => {
    expect(windowAround(200, 0, 1024)).toEqual([0, 200]);
    expect(windowAround(200, 150, 200)).toEqual([0, 200]);
  });

  it('otherwise holds a window with room ahead in the direction of travel', () => {
    // 3,000 slices, 1,024 held: opened at the first.
    expect(windowAround(3000, 0, 1024)).toEqual([0, 1024]);
    // Scrolling on past the end: a few kept behind, the rest ahead.
    expect(windowAround(3000, 1024, 1024, 1)).toEqual([1008, 2032]);
    // Scrolling back past the start: the rest behind.
    expect(windowAround(3000, 1007, 1024, -1)).toEqual([0, 1024]);
    expect(windowAround(3000, 2000, 1024, -1)).toEqual([993, 2017]);
    // Never past either end, always `capacity` slices, always holding the target.
    for (const [target, direction] of [[2999, 1], [2990, -1], [5, -1], [1500, 1]] as const) {
      const [start, end] = windowAround(3000, target, 1024, direction);
      expect(end - start).toBe(1024);
      expect(start).toBeGreaterThanOrEqual(0);
      expect(end).toBeLessThanOrEqual(3000);
      expect(target).toBeGreaterThanOrEqual(start);
      expect(target).toBeLessThan(end);
    }
    expect(windowAround(200, 199, 64, 1)).toEqual([136, 200]);
    expect(windowAround(200, 100, 1, 1)).toEqual([100, 101]);
  });

  it('fetches the nearest pending slice next, forward on a tie', () => {
    expect(nearestPending([0, 4, 7, 9], 5)).toBe(4);
    expect(nearestPending([3, 7], 5)).toBe(7);
    expect(nearestPending(new Set([1, 2]), 10)).toBe(2);
    expect(nearestPending([], 0)).toBeUndefined();
  });
});

describe('where the slices lie', () => {
  const axial = ['1', '0', '0', '0', '1', '0'];
  const fallback = { origin: [0, 0, 100] as [number, number, number], normal: [0, 0, 1] as [number, number, number], spacing: 1 };

  it('takes the manifest positions when they go forward along the normal', () => {
    const entries = [0, 2.5, 5].map((z) => ({ ImagePositionPatient: ['-10', '-20', String(z)], ImageOrientationPatient: axial }));
    expect(sliceOrigins(entries, fallback)).toEqual({ origins: [[-10, -20, 0], [-10, -20, 2.5], [-10, -20, 5]], measured: true });
  });

  it('places slices 1 mm apart when positions are missing, repeated or orientations differ', () => {
    const spaced = { origins: [[0, 0, 100], [0, 0, 101], [0, 0, 102]], measured: false };
    expect(sliceOrigins([{}, {}, {}], fallback)).toEqual(spaced);
    const repeated = [0, 0, 5].map((z) => ({ ImagePositionPatient: [0, 0, z], ImageOrientationPatient: axial }));
    expect(sliceOrigins(repeated, fallback)).toEqual(spaced);
    const tilted = [0, 1, 2].map((z, i) => ({ ImagePositionPatient: [0, 0, z],
      ImageOrientationPatient: i === 1 ? ['1', '0', '0', '0', '0', '-1'] : axial }));
    expect(sliceOrigins(tilted, fallback)).toEqual(spaced);
  });
});
