import { describe, expect, it } from 'vitest';
import { backoffDelay, checkFinal, chunkSizeFor, parseRange, uploadResumable, UploadError,
  type PutResponse, type Transport } from '../src/upload/resumable';

/** A Cloud Storage resumable session: keeps what it is sent, may keep less, may drop. */
class FakeSession implements Transport {
  stored = 0;
  calls: string[] = [];
  exposeRange = true;
  keepAtMost = Infinity;
  failNext: ('network' | number)[] = [];
  finalized = false;
  constructor(public size: number) {}

  async put(_url: string, headers: Record<string, string>, body: Blob | null,
    onProgress: (n: number) => void): Promise<PutResponse> {
    const range = headers['Content-Range'];
    this.calls.push(range);
    const fail = this.failNext.shift();
    if (fail === 'network') throw new UploadError('network error', 'network');
    if (typeof fail === 'number') return { status: fail, range: null };
    const status = /^bytes \*\/(\d+)$/.exec(range);
    if (status) return this.answer();
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(range)!;
    const start = Number(m[1]);
    const end = Number(m[2]) + 1;
    expect(body!.size).toBe(end - start);
    if (start !== this.stored) return this.answer();
    onProgress(body!.size / 2);
    onProgress(body!.size);
    this.stored = Math.min(end, start + this.keepAtMost);
    return this.answer();
  }

  answer(): PutResponse {
    if (this.stored >= this.size) {
      this.finalized = true;
      return { status: 200, range: null, body: JSON.stringify({ size: String(this.size) }) };
    }
    const range = this.stored > 0 ? `bytes=0-${this.stored - 1}` : null;
    return { status: 308, range: this.exposeRange ? range : null };
  }
}

const KIB = 1024;
const blob = (n: number) => new Blob([new Uint8Array(n)]);
const noSleep = async () => {};

describe('resumable upload', () => {
  it('helpers', () => {
    expect(parseRange('bytes=0-262143')).toBe(262143);
    expect(parseRange(null)).toBe(-1);
    expect(parseRange('bytes=5-9')).toBe(-1);
    expect(chunkSizeFor(1)).toBe(256 * KIB);
    expect(chunkSizeFor(1000 * KIB)).toBe(768 * KIB);
    expect(backoffDelay(1, 1000, () => 0)).toBe(500);
    expect(backoffDelay(3, 1000, () => 1)).toBe(4000);
    expect(backoffDelay(20, 1000, () => 1)).toBe(30000);
  });

  it('sends chunks of whole 256 KiB units and reports progress to the end', async () => {
    const size = 1000 * KIB + 123;
    const s = new FakeSession(size);
    const seen: number[] = [];
    await uploadResumable(blob(size), 'u', { transport: s, chunkSize: 256 * KIB, onProgress: (n) => seen.push(n) });
    expect(s.finalized).toBe(true);
    expect(s.calls[0]).toBe(`bytes 0-${256 * KIB - 1}/${size}`);
    expect(s.calls).toHaveLength(4);
    expect(seen.at(-1)).toBe(size);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
  });

  it('resends what the server did not keep (Range shorter than sent)', async () => {
    const size = 768 * KIB;
    const s = new FakeSession(size);
    s.keepAtMost = 100 * KIB;
    await uploadResumable(blob(size), 'u', { transport: s, chunkSize: 256 * KIB });
    expect(s.finalized).toBe(true);
    expect(s.calls[1]).toBe(`bytes ${100 * KIB}-${356 * KIB - 1}/${size}`);
  });

  it('after a dropped connection or a 503 asks where it stands and resumes', async () => {
    const size = 768 * KIB;
    const s = new FakeSession(size);
    s.failNext = [undefined as never, 'network', 503];
    const sleeps: number[] = [];
    await uploadResumable(blob(size), 'u', { transport: s, chunkSize: 256 * KIB,
      sleep: async (ms) => { sleeps.push(ms); }, random: () => 0 });
    expect(s.finalized).toBe(true);
    expect(s.calls).toContain(`bytes */${size}`);
    expect(sleeps.length).toBeGreaterThanOrEqual(2);
  });

  it('gives up after too many failures, and on a gone session', async () => {
    const s = new FakeSession(10);
    s.failNext = Array(20).fill('network');
    await expect(uploadResumable(blob(10), 'u', { transport: s, maxRetries: 3, sleep: noSleep }))
      .rejects.toMatchObject({ code: 'network' });
    const gone = new FakeSession(10);
    gone.failNext = [404];
    await expect(uploadResumable(blob(10), 'u', { transport: gone, sleep: noSleep }))
      .rejects.toMatchObject({ code: 'session_gone' });
    const refused = new FakeSession(10);
    refused.failNext = [403];
    await expect(uploadResumable(blob(10), 'u', { transport: refused, sleep: noSleep }))
      .rejects.toMatchObject({ code: 'http_403' });
  });

  it('works when CORS hides Range (the emulator), and checks the final size', async () => {
    const size = 600 * KIB;
    const s = new FakeSession(size);
    s.exposeRange = false;
    await uploadResumable(blob(size), 'u', { transport: s, chunkSize: 256 * KIB });
    expect(s.finalized).toBe(true);
    expect(() => checkFinal({ status: 200, range: null, body: '{"size":"5"}' }, 6, false))
      .toThrowError(/5 of 6/);
    expect(() => checkFinal({ status: 200, range: null, body: '' }, 6, true)).toThrow();
    expect(() => checkFinal({ status: 200, range: null, body: '' }, 6, false)).not.toThrow();
  });

  it('never loops when the server keeps nothing', async () => {
    // Without any Range ever seen, "kept nothing" looks like "Range hidden": it ends with
    // an error at the last chunk instead of a wrong success.
    const s = new FakeSession(300 * KIB);
    s.keepAtMost = 0;
    await expect(uploadResumable(blob(300 * KIB), 'u', { transport: s, chunkSize: 256 * KIB }))
      .rejects.toMatchObject({ code: 'incomplete' });
    // Once the server has shown a Range, a session that stops keeping anything is caught.
    const t = new FakeSession(1024 * KIB);
    let calls = 0;
    const orig = t.put.bind(t);
    t.put = async (...a: Parameters<typeof orig>) => { calls += 1; if (calls > 1) t.keepAtMost = 0; return orig(...a); };
    await expect(uploadResumable(blob(1024 * KIB), 'u', { transport: t, chunkSize: 256 * KIB }))
      .rejects.toMatchObject({ code: 'no_progress' });
  });

  it('stops when cancelled', async () => {
    const c = new AbortController();
    c.abort();
    await expect(uploadResumable(blob(10), 'u', { transport: new FakeSession(10), signal: c.signal }))
      .rejects.toMatchObject({ code: 'cancelled' });
  });
});
