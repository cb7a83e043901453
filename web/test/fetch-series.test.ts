import { afterEach, describe, expect, it, vi } from 'vitest';
import { SliceFetcher, type SeriesItem } from '../src/viewer/fetch-series';

afterEach(() => vi.unstubAllGlobals());

const items: SeriesItem[] = Array.from({ length: 10 }, (_, i) => ({ url: `/${i}` }));
const index = (url: string) => Number(url.slice(1));

/** A fake network: each request waits until the test releases it. */
function network(status: (i: number) => number = () => 200) {
  const waiting: { i: number; release: () => void; signal?: AbortSignal | null }[] = [];
  const started: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  vi.stubGlobal('fetch', vi.fn((url: string, init: RequestInit) => {
    const i = index(url);
    started.push(i);
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<Response>((resolve, reject) => {
      const done = () => { inFlight -= 1; };
      init.signal?.addEventListener('abort', () => { done(); reject(new DOMException('aborted', 'AbortError')); });
      waiting.push({ i, signal: init.signal, release: () => {
        done();
        resolve(status(i) === 200 ? new Response(new Uint8Array([i])) : new Response('', { status: status(i) }));
      } });
    });
  }));
  const tick = () => new Promise((r) => setTimeout(r, 0));
  return {
    started, waiting, tick, max: () => maxInFlight,
    /** Answer the request for `i` (or the oldest) and let the fetcher move on. */
    async answer(i?: number) {
      const at = i === undefined ? 0 : waiting.findIndex((w) => w.i === i);
      const [w] = waiting.splice(at, 1);
      w.release();
      for (let k = 0; k < 5; k += 1) await tick();
    },
  };
}

describe('fetching a series nearest first', () => {
  it('fetches the first slice alone, then the rest nearest to the one on screen', async () => {
    const net = network();
    const got: number[] = [];
    const fetcher = new SliceFetcher({ items, indices: items.map((_, i) => i), first: 4, lanes: 3,
      prepare: async (_item, body) => new Uint8Array([new Uint8Array(body)[0] + 100]).buffer,
      onSlice: (i, buffer) => got.push(i, new Uint8Array(buffer)[0]), onFailure: () => {} });
    const run = fetcher.run();
    await net.tick();
    expect(net.started).toEqual([4]); // alone: all the bandwidth for the image a person waits for
    await net.answer(4);
    expect(got).toEqual([4, 104]);
    // Then three lanes, nearest first, forward on a tie.
    expect(net.started).toEqual([4, 5, 3, 6]);
    fetcher.focus(9);
    await net.answer(5);
    expect(net.started.at(-1)).toBe(9);
    while (net.waiting.length) await net.answer();
    await run;
    expect(new Set(net.started)).toEqual(new Set(items.map((_, i) => i)));
    expect(net.started.length).toBe(10);
    expect(net.max()).toBe(3);
  });

  it('reports what fails and goes on', async () => {
    const net = network((i) => (i === 1 ? 404 : 200));
    const got: number[] = [];
    const failures: [number, string][] = [];
    const fetcher = new SliceFetcher({ items: items.slice(0, 3), indices: [0, 1, 2], first: 0,
      prepare: async (_item, body) => body, onSlice: (i) => got.push(i),
      onFailure: (i, reason) => failures.push([i, reason]) });
    const run = fetcher.run();
    while (net.waiting.length || net.started.length < 3) await net.answer();
    await run;
    expect(got.sort()).toEqual([0, 2]);
    expect(failures).toEqual([[1, 'the image could not be fetched (HTTP 404)']]);
  });

  it('cancels what is in flight and hands nothing over after', async () => {
    const net = network();
    const got: number[] = [];
    const failures: number[] = [];
    const fetcher = new SliceFetcher({ items, indices: items.map((_, i) => i), first: 0,
      prepare: async (_item, body) => body, onSlice: (i) => got.push(i), onFailure: (i) => failures.push(i) });
    const run = fetcher.run();
    await net.answer(0);
    expect(net.waiting.length).toBe(4);
    fetcher.cancel();
    await run;
    expect(net.waiting.every((w) => w.signal?.aborted)).toBe(true);
    expect(net.started.length).toBe(5);
    expect(got).toEqual([0]);
    expect(failures).toEqual([]);
  });
});
