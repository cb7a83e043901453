// Resumable uploads to a Cloud Storage session URL (the protocol `pacs upload` speaks, see
// cli/pacs_cli/uploader.py): PUT chunks with `Content-Range: bytes a-b/total`; 308 means
// "go on" and its Range header says what the server kept; 200/201 means finalized. After a
// network error, a 429 or a 5xx, wait (exponential backoff with jitter) and ask where the
// session stands with an empty PUT `Content-Range: bytes */total`; 404/410 means the session
// is gone.

export const CHUNK_GRANULARITY = 256 * 1024;
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

export interface PutResponse {
  status: number;
  range: string | null;
  body?: string;
}

export interface Transport {
  put(url: string, headers: Record<string, string>, body: Blob | null,
    onProgress: (loaded: number) => void, signal?: AbortSignal): Promise<PutResponse>;
}

export class UploadError extends Error {
  constructor(message: string, public code: string) {
    super(message);
  }
}

export interface UploadOptions {
  chunkSize?: number;
  maxRetries?: number;
  baseDelayMs?: number;
  onProgress?: (bytesSent: number) => void;
  signal?: AbortSignal;
  transport?: Transport;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** The last byte index a `Range: bytes=0-n` header says was persisted, or -1 for none. */
export function parseRange(range: string | null): number {
  if (!range) return -1;
  const m = /^bytes=0-(\d+)$/.exec(range.trim());
  return m ? Number(m[1]) : -1;
}

export function chunkSizeFor(requested: number): number {
  const n = Math.max(CHUNK_GRANULARITY, Math.floor(requested / CHUNK_GRANULARITY) * CHUNK_GRANULARITY);
  return n;
}

export function backoffDelay(failures: number, baseMs: number, random: () => number): number {
  const cap = 30_000;
  const exp = Math.min(cap, baseMs * 2 ** (failures - 1));
  return exp / 2 + random() * (exp / 2);
}

const RETRY = new Set([408, 429, 500, 502, 503, 504]);

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(new UploadError('cancelled', 'cancelled')); },
      { once: true });
  });
}

/** Upload `file` through `sessionUrl`; resolves with the finalizing response. */
export async function uploadResumable(file: Blob, sessionUrl: string,
  opts: UploadOptions = {}): Promise<PutResponse> {
  const size = file.size;
  const chunk = chunkSizeFor(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const transport = opts.transport ?? xhrTransport;
  const maxRetries = opts.maxRetries ?? 6;
  const base = opts.baseDelayMs ?? 1000;
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? ((ms: number) => defaultSleep(ms, opts.signal));
  const progress = opts.onProgress ?? (() => {});
  let offset = 0;
  let failures = 0;
  let stalled = 0;

  // Browsers hide the Range header unless the bucket's CORS exposes it (the emulator does
  // not). Then a 308 after a data chunk is taken to mean the chunk was kept, and the final
  // answer's object size is checked (a wrong guess fails there, never silently).
  let assumed = false;
  let rangeSeen = false;
  const apply308 = (resp: PutResponse, chunkEnd: number) => {
    if (resp.range !== null) rangeSeen = true;
    if (resp.range === null && !rangeSeen && chunkEnd > offset) {
      assumed = true;
      if (chunkEnd >= size) {
        throw new UploadError('the storage server did not finish the upload', 'incomplete');
      }
      offset = chunkEnd;
      stalled = 0;
      progress(offset);
      return;
    }
    const next = parseRange(resp.range) + 1;
    stalled = next <= offset ? stalled + 1 : 0;
    if (stalled >= 3) {
      throw new UploadError('the storage server keeps no progress of this upload', 'no_progress');
    }
    offset = next;
    progress(offset);
  };

  while (true) {
    if (opts.signal?.aborted) throw new UploadError('cancelled', 'cancelled');
    const end = Math.min(offset + chunk, size);
    let resp: PutResponse | null = null;
    try {
      resp = await transport.put(sessionUrl, { 'Content-Range': `bytes ${offset}-${end - 1}/${size}` },
        file.slice(offset, end), (loaded) => progress(offset + loaded), opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw new UploadError('cancelled', 'cancelled');
      if (err instanceof UploadError && err.code !== 'network') throw err;
      resp = null;
    }
    if (resp && (resp.status === 200 || resp.status === 201)) {
      checkFinal(resp, size, assumed);
      progress(size);
      return resp;
    }
    if (resp && resp.status === 308) {
      failures = 0;
      apply308(resp, end);
      continue;
    }
    if (resp && (resp.status === 404 || resp.status === 410)) {
      throw new UploadError('the upload session has expired; start the upload again', 'session_gone');
    }
    if (resp && !RETRY.has(resp.status)) {
      throw new UploadError(`the storage server refused the upload (HTTP ${resp.status})`, `http_${resp.status}`);
    }
    // Retryable: wait, then ask the session where it stands.
    while (true) {
      failures += 1;
      if (failures > maxRetries) {
        throw new UploadError('the upload kept failing; check your connection and retry', 'network');
      }
      await sleep(backoffDelay(failures, base, random));
      let status: PutResponse | null = null;
      try {
        status = await transport.put(sessionUrl, { 'Content-Range': `bytes */${size}` }, null,
          () => {}, opts.signal);
      } catch {
        if (opts.signal?.aborted) throw new UploadError('cancelled', 'cancelled');
        continue;
      }
      if (status.status === 200 || status.status === 201) {
        checkFinal(status, size, assumed);
        progress(size);
        return status;
      }
      if (status.status === 308) {
        if (status.range === null && assumed) {
          throw new UploadError('the upload was interrupted and cannot be resumed here; retry it',
            'not_resumable');
        }
        offset = parseRange(status.range) + 1;
        progress(offset);
        break;
      }
      if (status.status === 404 || status.status === 410) {
        throw new UploadError('the upload session has expired; start the upload again', 'session_gone');
      }
      if (!RETRY.has(status.status)) {
        throw new UploadError(`the storage server refused the upload (HTTP ${status.status})`,
          `http_${status.status}`);
      }
    }
  }
}

/** The finalized object's size (JSON body of the last answer) must be the file's. */
export function checkFinal(resp: PutResponse, size: number, strict: boolean): void {
  let reported: number | null = null;
  try {
    const body = resp.body ? JSON.parse(resp.body) : null;
    if (body && body.size !== undefined) reported = Number(body.size);
  } catch {
    reported = null;
  }
  if (reported !== null && reported !== size) {
    throw new UploadError(`the stored file has ${reported} of ${size} bytes`, 'partial_object');
  }
  if (reported === null && strict) {
    throw new UploadError('the storage server did not confirm the stored size', 'unconfirmed');
  }
}

/** XMLHttpRequest, for upload progress events (fetch has none). */
export const xhrTransport: Transport = {
  put(url, headers, body, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => {
        // Ask for Range only when CORS exposes it (else the browser logs an error).
        const exposed = /(^|\n)range:/i.test(xhr.getAllResponseHeaders());
        resolve({ status: xhr.status, range: exposed ? xhr.getResponseHeader('Range') : null,
          body: xhr.responseText });
      };
      xhr.onerror = () => reject(new UploadError('network error', 'network'));
      xhr.ontimeout = () => reject(new UploadError('timed out', 'network'));
      xhr.onabort = () => reject(new UploadError('cancelled', 'cancelled'));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(body);
    });
  },
};
