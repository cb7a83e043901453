import { afterEach, describe, expect, it, vi } from 'vitest';
import { fetchSeries } from '../src/viewer/fetch-series';

const JLS = '1.2.840.10008.1.2.4.80';

afterEach(() => vi.unstubAllGlobals());

describe('fetching a series for transcoding', () => {
  it('keeps the order, transcodes only what needs it, reports progress and failures', async () => {
    const bodies: Record<string, number[] | number> = { '/a': [1], '/b': [2], '/c': 404, '/d': [4] };
    vi.stubGlobal('fetch', vi.fn(async (url: string) => {
      const body = bodies[url];
      // Later URLs answer first: the result must still follow the series' order.
      await new Promise((r) => setTimeout(r, url === '/a' ? 30 : 1));
      return typeof body === 'number' ? new Response('', { status: body }) : new Response(new Uint8Array(body));
    }));
    const transcoded: number[] = [];
    const progress: number[] = [];
    const out = await fetchSeries(
      [{ url: '/a', transferSyntax: JLS }, { url: '/b' }, { url: '/c', transferSyntax: JLS }, { url: '/d', transferSyntax: JLS }],
      { signal: new AbortController().signal, onProgress: (p) => progress.push(p),
        transcode: async (b) => {
          const v = new Uint8Array(b)[0];
          transcoded.push(v);
          return new Uint8Array([v + 100]).buffer;
        } });
    expect(out.buffers.map((b) => new Uint8Array(b)[0])).toEqual([101, 2, 104]);
    expect(transcoded.sort()).toEqual([1, 4]);
    expect(out.failures).toEqual(['the image could not be fetched (HTTP 404)']);
    expect(progress.at(-1)).toBe(100);
    expect(progress).toEqual([...progress].sort((x, y) => x - y));
  });

  it('stops on abort instead of reporting failures', async () => {
    const ctl = new AbortController();
    vi.stubGlobal('fetch', vi.fn(async (_url: string, init: RequestInit) => {
      ctl.abort();
      throw init.signal?.aborted ? new DOMException('aborted', 'AbortError') : new Error('?');
    }));
    await expect(fetchSeries([{ url: '/a' }], { signal: ctl.signal, transcode: async (b) => b }))
      .rejects.toThrow(/aborted/);
  });
});
