// Fetching a series' files for dwv when some need transcoding first (dwv fetches the others
// itself through loadURLs; a series mixing both is fetched here whole, as dwv takes either
// URLs or buffers in one load).
import { needsTranscode } from '../dicom/transcode';

export interface SeriesItem {
  url: string;
  transferSyntax?: string;
}

export interface FetchedSeries {
  buffers: ArrayBuffer[];
  failures: string[];
}

const PARALLEL = 4;

export async function fetchSeries(items: SeriesItem[], opts: {
  signal: AbortSignal;
  transcode: (buffer: ArrayBuffer) => Promise<ArrayBuffer>;
  onProgress?: (percent: number) => void;
}): Promise<FetchedSeries> {
  const buffers: (ArrayBuffer | undefined)[] = new Array(items.length);
  const failures: string[] = [];
  let nextIndex = 0;
  let done = 0;
  const one = async (item: SeriesItem): Promise<ArrayBuffer> => {
    const resp = await fetch(item.url, { signal: opts.signal, referrerPolicy: 'no-referrer' });
    if (!resp.ok) throw new Error(`the image could not be fetched (HTTP ${resp.status})`);
    const body = await resp.arrayBuffer();
    return needsTranscode(item.transferSyntax) ? opts.transcode(body) : body;
  };
  const lane = async () => {
    while (nextIndex < items.length) {
      const index = nextIndex++;
      try {
        buffers[index] = await one(items[index]);
      } catch (err) {
        if (opts.signal.aborted) throw err;
        failures.push(err instanceof Error ? err.message : String(err));
      }
      done += 1;
      opts.onProgress?.(Math.round((100 * done) / items.length));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, lane));
  return { buffers: buffers.filter((b): b is ArrayBuffer => !!b), failures };
}
