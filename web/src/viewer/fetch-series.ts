// Fetching a series' files for the viewer, nearest first: the slice on screen alone (all the
// bandwidth for the image a person waits for), then the rest a few at a time, nearest to the
// slice on screen first, so that the first image shows as soon as its own bytes are in and
// the neighbours follow wherever the person moves. Each file is prepared (transcoded when dwv
// cannot read it, trimmed after its data set) and handed over at once; nothing is kept here.
// Cancelling aborts what is in flight.
import { nearestPending } from './plan';

export interface SeriesItem {
  url: string;
  transferSyntax?: string;
  /** From the manifest, to place and size the slices before their bytes arrive. */
  id?: string;
  position?: unknown;
  orientation?: unknown;
  rows?: number;
  columns?: number;
}

export interface SliceFetcherOptions {
  items: SeriesItem[];
  /** The indices to fetch, in viewing order. */
  indices: number[];
  /** Fetched first, alone. */
  first: number;
  prepare: (item: SeriesItem, body: ArrayBuffer) => Promise<ArrayBuffer>;
  onSlice: (index: number, buffer: ArrayBuffer) => void;
  onFailure: (index: number, reason: string) => void;
  /** Requests in flight after the first (browsers allow six per host over HTTP/1.1). */
  lanes?: number;
}

export class SliceFetcher {
  private pending: Set<number>;
  private controller = new AbortController();
  private current: number;

  constructor(private opts: SliceFetcherOptions) {
    this.pending = new Set(opts.indices);
    this.current = opts.first;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Fetch `first`, then the rest. Resolves when everything was fetched or on cancel. */
  async run(): Promise<void> {
    if (this.pending.delete(this.opts.first)) await this.one(this.opts.first);
    const lanes = Math.min(this.opts.lanes ?? 4, this.pending.size);
    await Promise.all(Array.from({ length: lanes }, () => this.lane()));
  }

  /** The slice on screen moved: fetch around it next. */
  focus(index: number): void {
    this.current = index;
  }

  cancel(): void {
    this.pending.clear();
    this.controller.abort();
  }

  private async lane(): Promise<void> {
    for (;;) {
      const index = nearestPending(this.pending, this.current);
      if (index === undefined || this.controller.signal.aborted) return;
      this.pending.delete(index);
      await this.one(index);
    }
  }

  private async one(index: number): Promise<void> {
    const item = this.opts.items[index];
    const { signal } = this.controller;
    try {
      const resp = await fetch(item.url, { signal, referrerPolicy: 'no-referrer' });
      if (!resp.ok) throw new Error(`the image could not be fetched (HTTP ${resp.status})`);
      const buffer = await this.opts.prepare(item, await resp.arrayBuffer());
      if (!signal.aborted) this.opts.onSlice(index, buffer);
    } catch (err) {
      if (!signal.aborted) this.opts.onFailure(index, err instanceof Error ? err.message : String(err));
    }
  }
}
