import { describe, expect, it } from 'vitest';
import { RateMeter, formatBytes, formatDicomDate, formatEta, formatPersonName, formatSpeed } from '../src/format';

describe('format', () => {
  it('sizes and speeds', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64 MB');
    expect(formatBytes(undefined)).toBe('–');
    expect(formatSpeed(0)).toBe('–');
    expect(formatSpeed(2 * 1024 * 1024)).toBe('2.0 MB/s');
  });
  it('time left', () => {
    expect(formatEta(null)).toBe('–');
    expect(formatEta(0.2)).toBe('almost done');
    expect(formatEta(42.1)).toBe('43 s left');
    expect(formatEta(150)).toBe('3 min left');
    expect(formatEta(3 * 3600 + 20 * 60)).toBe('3 h 20 min left');
  });
  it('DICOM dates and person names', () => {
    expect(formatDicomDate('20040119')).toBe('2004-01-19');
    expect(formatDicomDate('')).toBe('–');
    expect(formatPersonName('Müller^Jürgen^^Dr')).toBe('Dr Jürgen Müller');
    expect(formatPersonName('CompressedSamples^CT1')).toBe('CT1 CompressedSamples');
    expect(formatPersonName('Yamada^Tarou=山田^太郎')).toBe('Tarou Yamada');
    expect(formatPersonName({ Alphabetic: 'Doe^Jane' })).toBe('Jane Doe');
    expect(formatPersonName(null)).toBe('–');
  });
  it('rate meter smooths and predicts', () => {
    const m = new RateMeter(1000);
    m.update(0, 0);
    m.update(1_000_000, 1000);
    expect(m.bytesPerSecond).toBeCloseTo(1_000_000, -3);
    m.update(1_000_000, 1100); // too short an interval: ignored
    expect(m.bytesPerSecond).toBeCloseTo(1_000_000, -3);
    m.update(1_500_000, 2000);
    expect(m.bytesPerSecond).toBeLessThan(1_000_000);
    expect(m.bytesPerSecond).toBeGreaterThan(500_000);
    expect(m.eta(m.bytesPerSecond * 10)).toBeCloseTo(10);
    expect(new RateMeter().eta(100)).toBeNull();
  });
});
