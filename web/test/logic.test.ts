import { describe, expect, it } from 'vitest';
import { buildUrl } from '../src/api';
import { normalizeConfig, DEFAULT_IDLE_SECONDS } from '../src/config';
import { isFresh, refreshDelayMs, sortInstances, seriesInstances } from '../src/manifests';
import { policyBlocks } from '../src/policy';
import { matchPath } from '../src/router';
import { cleanFilters, filtersOfState, isValidDate, searchState, validateFilters } from '../src/search';
import { contentTypeFor, isHidden, kindOfHeader } from '../src/upload/files';

describe('search filters', () => {
  it('keeps known, non-empty filters, ignoring unknown keys', () => {
    const f = cleanFilters({ name: ' mül ', modality: 'CT', evil: '1', date_from: '2024-01-01', keyword: '' });
    expect(f).toEqual({ name: 'mül', modality: 'CT', date_from: '2024-01-01' });
  });
  it('keeps a search in memory, keyed from history state, never in the state itself', () => {
    const state = searchState({ name: 'Müller', patient_id: 'PID-7' });
    expect(JSON.stringify(state)).not.toMatch(/Müller|PID-7/);
    expect(filtersOfState(state)).toEqual({ name: 'Müller', patient_id: 'PID-7' });
    expect(searchState({})).toBeNull();
    expect(filtersOfState(null)).toEqual({});
    expect(filtersOfState({ search: 'unknown' })).toEqual({});
  });
  it('validates dates and ranges before asking the server', () => {
    expect(isValidDate('2024-02-29')).toBe(true);
    expect(isValidDate('2023-02-29')).toBe(false);
    expect(isValidDate('20240131')).toBe(true);
    expect(validateFilters({ date_from: '2024-05-01', date_to: '2024-04-01' }).date_to).toMatch(/before/);
    expect(validateFilters({ date_from: 'yesterday' }).date_from).toBeTruthy();
    expect(validateFilters({ keyword: 'a b' }).keyword).toBeTruthy();
    expect(validateFilters({ keyword: 'knee' })).toEqual({});
  });
});

describe('files', () => {
  it('tells DICOM, ZIP and other content by magic bytes', () => {
    const dicom = new Uint8Array(132);
    dicom.set([0x44, 0x49, 0x43, 0x4d], 128);
    expect(kindOfHeader(dicom)).toBe('dicom');
    expect(kindOfHeader(new Uint8Array([0x50, 0x4b, 3, 4, 0]))).toBe('zip');
    expect(kindOfHeader(new Uint8Array([1, 2, 3]))).toBe('other');
    expect(contentTypeFor('zip')).toBe('application/zip');
    expect(contentTypeFor('other')).toBe('application/octet-stream');
  });
  it('skips hidden files and folders', () => {
    expect(isHidden('CD/.DS_Store')).toBe(true);
    expect(isHidden('.git/config')).toBe(true);
    expect(isHidden('CD/IMG0001')).toBe(false);
  });
});

describe('manifests', () => {
  it('refreshes a fifth of the lifetime before expiry', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const m = { expires_at: '2026-01-01T00:15:00Z', ttl_seconds: 900 };
    expect(refreshDelayMs(m, now)).toBe(12 * 60_000);
    expect(isFresh(m, now)).toBe(true);
    expect(isFresh(m, now + 14 * 60_000)).toBe(false);
    expect(refreshDelayMs(m, now + 20 * 60_000)).toBe(5_000);
  });
  it('orders slices along the normal, then location, then number', () => {
    const axial = ['1', '0', '0', '0', '1', '0'];
    const list = [
      { instance_id: 'c', ImagePositionPatient: [0, 0, 10], ImageOrientationPatient: axial, url: 'c' },
      { instance_id: 'a', ImagePositionPatient: [0, 0, -5], ImageOrientationPatient: axial, url: 'a' },
      { instance_id: 'b', ImagePositionPatient: ['0', '0', '2.5'], ImageOrientationPatient: axial, url: 'b' },
    ];
    expect(sortInstances(list).map((i) => i.instance_id)).toEqual(['a', 'b', 'c']);
    const numbered = [{ instance_id: 'x', InstanceNumber: 3, url: null }, { instance_id: 'y', InstanceNumber: '1', url: null }];
    expect(sortInstances(numbered).map((i) => i.instance_id)).toEqual(['y', 'x']);
  });
  it('reads every page of a series', async () => {
    const pages: Record<string, any> = {
      '': { series_id: 's', instances: [{ instance_id: '1', InstanceNumber: 2, url: 'u1' }], expires_at: '2026-01-01T00:10:00Z', next_page_token: 't' },
      t: { series_id: 's', instances: [{ instance_id: '2', InstanceNumber: 1, url: 'u2' }], expires_at: '2026-01-01T00:09:00Z', next_page_token: null },
    };
    const out = await seriesInstances(async (token) => pages[token ?? '']);
    expect(out.instances.map((i) => i.url)).toEqual(['u2', 'u1']);
    expect(out.expiresAt).toBe('2026-01-01T00:09:00Z');
  });
});

describe('small things', () => {
  it('routes', () => {
    expect(matchPath('/studies/:id', '/studies/abc')).toEqual({ id: 'abc' });
    expect(matchPath('/studies/:id', '/studies')).toBeNull();
    expect(matchPath('/view', '/view')).toEqual({});
    expect(matchPath('/studies/:id', '/studies/%E0%A4%A')).toBeNull();
  });
  it('api URLs drop empty filters', () => {
    expect(buildUrl('/api', '/studies', { name: ' ab ', modality: '', limit: 20, cursor: null }))
      .toBe('/api/studies?name=ab&limit=20');
  });
  it('config defaults', () => {
    const c = normalizeConfig({ projectId: 'p', apiKey: 'k' });
    expect(c.apiBase).toBe('/api');
    expect(c.idleTimeoutSeconds).toBe(DEFAULT_IDLE_SECONDS);
    expect(normalizeConfig({ projectId: 'p', apiKey: 'k', idleTimeoutSeconds: 30 }).idleTimeoutSeconds).toBe(30);
    expect(() => normalizeConfig({ apiKey: 'k' })).toThrow();
  });
  it('policy text becomes headings and paragraphs', () => {
    const blocks = policyBlocks('Privacy Policy\n\nEffective date: 2026-02-08\n\nSecurity\n\nWe protect data.\nReally.');
    expect(blocks.map((b) => b.kind)).toEqual(['title', 'paragraph', 'heading', 'paragraph']);
    expect(blocks[3].text).toBe('We protect data. Really.');
  });
});
