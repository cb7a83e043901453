// The upload queue: files are announced to the upload endpoint a batch at a time (one
// request reserves up to BATCH_FILES files: ./batches.ts), each is sent straight to Storage
// through its resumable session, then followed live in Firestore (one query per batch)
// until the server has a result for every file in it.
import { collection, getDocs, onSnapshot, query, where, type DocumentData,
  type Unsubscribe } from 'firebase/firestore';
import { api, ApiError, describeError } from '../api';
import { getBackend } from '../firebase';
import { RateMeter } from '../format';
import { BATCH_FILES, LOW_WATER, PER_FILE_CODES, checkAnswer, takeBatch,
  type StartedUpload } from './batches';
import { contentTypeFor, sniff, type Kind, type PickedFile } from './files';
import { backoffDelay, uploadResumable, UploadError } from './resumable';

export type ItemState = 'queued' | 'starting' | 'uploading' | 'processing' | 'done' | 'failed'
  | 'skipped' | 'cancelled';

export interface FileResult {
  id: string;
  name: string;
  status: 'stored' | 'duplicate' | 'conflict' | 'rejected' | 'skipped' | string;
  reason?: string;
  message?: string | null;
}

export interface UploadItem {
  key: number;
  picked: PickedFile;
  size: number;
  sent: number;
  state: ItemState;
  error?: string;
  uploadId?: string;
  /** The session reserved for the file and not sent to yet. */
  started?: StartedUpload;
  batch?: string;
  kind?: Kind;
  serverStatus?: string;
  counts?: Record<string, number>;
  results: FileResult[];
  controller: AbortController;
  unsubscribe: Unsubscribe[];
}

/** Plain words for each per-file status. */
export const STATUS_TEXT: Record<string, string> = {
  stored: 'Stored',
  duplicate: 'Already stored (duplicate)',
  conflict: 'Conflict: a different file with the same ID is already stored',
  rejected: 'Rejected',
  skipped: 'Skipped',
};

export const UPLOAD_STATUS_TEXT: Record<string, string> = {
  pending: 'Waiting for the file to arrive',
  processing: 'Checking and indexing',
  complete: 'Done',
  partial: 'Done, some files were not stored',
  failed: 'Nothing could be stored',
};

const FINAL = new Set(['complete', 'partial', 'failed']);

export interface Totals {
  files: number;
  bytes: number;
  sent: number;
  speed: number;
  eta: number | null;
  active: number;
  done: number;
  failed: number;
}

interface BatchWatch {
  unsubscribe: Unsubscribe;
  items: Map<string, UploadItem>;
  latest: Map<string, DocumentData>;
}

const START_ATTEMPTS = 4;
const LONG_LIST = 100;
const LONG_LIST_RENDER_MS = 1000;
const SMALL_FILE_BYTES = 1024 * 1024;
const SMALL_FILE_CONCURRENCY = 6;
/** Per-file results read at most this many at a time once uploads are final. */
const RESULT_READS = 6;

function fileResult(id: string, r: DocumentData): FileResult {
  return { id, name: String(r.name ?? ''), status: String(r.status), reason: r.reason,
    message: r.message };
}

export class UploadManager {
  items: UploadItem[] = [];
  private nextKey = 1;
  private running = 0;
  private meter = new RateMeter();
  private listeners = new Set<() => void>();
  private scheduled = false;
  private reserving = false;
  private batchFiles = BATCH_FILES;
  /** Upload ids of each batch not final yet: its query is dropped when none is left. */
  private open = new Map<string, Set<string>>();
  private watches = new Map<string, BatchWatch>();
  private resultQueue: UploadItem[] = [];
  private readingResults = 0;

  constructor(public concurrency = 3) {}

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const notify = () => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    };
    // Rendering a long list costs time on the page's one thread, which also runs the
    // uploads: at most once a second then (every animation frame starved a 1,000-file
    // folder's uploads: 194 of its 211 s were rendering).
    if (this.items.length > LONG_LIST) setTimeout(notify, LONG_LIST_RENDER_MS);
    else requestAnimationFrame(notify);
  }

  add(files: PickedFile[]): void {
    for (const picked of files) {
      this.items.push({ key: this.nextKey++, picked, size: picked.file.size, sent: 0,
        state: 'queued', results: [], controller: new AbortController(), unsubscribe: [] });
    }
    this.changed();
    this.pump();
  }

  totals(now = performance.now()): Totals {
    let bytes = 0, sent = 0, active = 0, done = 0, failed = 0, files = 0;
    for (const it of this.items) {
      if (it.state === 'skipped' || it.state === 'cancelled') continue;
      files += 1;
      bytes += it.size;
      sent += Math.min(it.sent, it.size);
      if (it.state === 'uploading' || it.state === 'starting') active += 1;
      if (it.state === 'done' || it.state === 'processing') done += 1;
      if (it.state === 'failed') failed += 1;
    }
    const speed = this.meter.update(sent, now);
    return { files, bytes, sent, speed, eta: active ? this.meter.eta(bytes - sent) : null,
      active, done, failed };
  }

  cancel(item: UploadItem): void {
    if (item.state === 'queued' || item.state === 'starting' || item.state === 'uploading') {
      item.controller.abort();
      item.state = 'cancelled';
      if (item.started) this.settle(item.started.batch, item.started.upload_id);
      item.started = undefined;
      this.changed();
    }
  }

  retry(item: UploadItem): void {
    if (item.state !== 'failed' && item.state !== 'cancelled') return;
    item.controller = new AbortController();
    item.state = 'queued';
    item.sent = 0;
    item.error = undefined;
    item.started = undefined;
    this.changed();
    this.pump();
  }

  clearFinished(): void {
    this.items = this.items.filter((it) => {
      const finished = ['done', 'skipped', 'cancelled'].includes(it.state);
      if (finished) it.unsubscribe.forEach((u) => u());
      return !finished;
    });
    this.changed();
  }

  dispose(): void {
    for (const it of this.items) {
      it.controller.abort();
      it.unsubscribe.forEach((u) => u());
    }
    for (const watch of this.watches.values()) watch.unsubscribe();
    this.watches.clear();
    this.open.clear();
    this.items = [];
  }

  private pump(): void {
    while (true) {
      const next = this.items.find((it) => it.state === 'queued' && it.started);
      if (!next) break;
      // Small files are mostly round trips: more of them at once (a browser opens six
      // connections per host).
      const limit = next.size <= SMALL_FILE_BYTES ? Math.max(this.concurrency, SMALL_FILE_CONCURRENCY)
        : this.concurrency;
      if (this.running >= limit) break;
      this.running += 1;
      this.run(next).finally(() => {
        this.running -= 1;
        this.changed();
        this.pump();
      });
    }
    this.reserveMore();
  }

  /** Reserve the next batch while the reserved files run low (uploads keep going). */
  private reserveMore(): void {
    if (this.reserving) return;
    let ready = 0;
    const waiting: UploadItem[] = [];
    for (const it of this.items) {
      if (it.state !== 'queued') continue;
      if (it.started) ready += 1;
      else waiting.push(it);
    }
    if (ready >= LOW_WATER || waiting.length === 0) return;
    this.reserving = true;
    this.reserve(takeBatch(waiting, (it) => it.size, this.batchFiles)).finally(() => {
      this.reserving = false;
      this.changed();
      this.pump();
    });
  }

  /** One start request, tried again after a network error or a 5xx (a reservation is all
   *  or nothing, so trying again is safe; a limit's 429 is an answer, not a failure). */
  private async start(items: UploadItem[]): Promise<StartedUpload[]> {
    const body = { files: items.map((it) => ({ filename: it.picked.path.slice(-1024),
      size: it.size, content_type: contentTypeFor(it.kind ?? 'other') })) };
    for (let attempt = 1; ; attempt += 1) {
      try {
        return checkAnswer(await api('/uploads', { method: 'POST', body }), items.length);
      } catch (err) {
        const retry = err instanceof ApiError && (err.status === 0 || err.status >= 500);
        if (!retry || attempt >= START_ATTEMPTS) throw err;
        await new Promise((ok) => setTimeout(ok, backoffDelay(attempt, 1000, Math.random)));
      }
    }
  }

  private assign(item: UploadItem, started: StartedUpload): void {
    if (started.batch) {
      if (!this.open.has(started.batch)) this.open.set(started.batch, new Set());
      this.open.get(started.batch)!.add(started.upload_id);
    }
    if (item.state !== 'starting') {
      this.settle(started.batch, started.upload_id); // cancelled meanwhile
      return;
    }
    item.started = started;
    item.state = 'queued';
  }

  /** One request for the batch's files: a session for each, or the reason for all. */
  private async reserve(batch: UploadItem[]): Promise<void> {
    for (const it of batch) it.state = 'starting';
    this.changed();
    const files: UploadItem[] = [];
    const kinds = await Promise.all(batch.map((it) => (it.size === 0 ? null
      : sniff(it.picked.file).catch(() => undefined))));
    for (const [i, it] of batch.entries()) {
      if (it.state !== 'starting') continue; // cancelled meanwhile
      if (it.size === 0) {
        it.state = 'skipped';
        it.error = 'This file is empty.';
        continue;
      }
      if (!kinds[i]) {
        it.state = 'failed';
        it.error = 'This file could not be read.';
        continue;
      }
      it.kind = kinds[i]!;
      if (it.kind === 'other') {
        it.state = 'skipped';
        it.error = 'Not uploaded: this is neither a DICOM file nor a ZIP archive.';
        continue;
      }
      files.push(it);
    }
    if (!files.length) return;
    try {
      const started = await this.start(files);
      files.forEach((it, i) => this.assign(it, started[i]));
      return;
    } catch (err) {
      const code = err instanceof ApiError ? err.code : '';
      if (code === 'too_many_files' && files.length > 1) {
        // The server takes fewer files per request: halve, and keep the smaller size.
        this.batchFiles = Math.max(1, Math.floor(files.length / 2));
        for (const it of files) if (it.state === 'starting') it.state = 'queued';
        return;
      }
      if (!PER_FILE_CODES.has(code) || files.length === 1) {
        for (const it of files) this.fail(it, err);
        return;
      }
    }
    // One file of the batch was refused: start each alone, so each gets its own answer.
    for (const it of files) {
      if (it.state !== 'starting') continue;
      try {
        this.assign(it, (await this.start([it]))[0]);
      } catch (err) {
        this.fail(it, err);
      }
    }
  }

  private fail(item: UploadItem, err: unknown): void {
    if (item.state !== 'starting') return;
    item.state = 'failed';
    item.error = describeError(err);
  }

  private async run(item: UploadItem): Promise<void> {
    const started = item.started!;
    item.started = undefined;
    item.uploadId = started.upload_id;
    item.batch = started.batch;
    item.state = 'uploading';
    this.changed();
    try {
      await uploadResumable(item.picked.file, started.session_url, {
        signal: item.controller.signal,
        onProgress: (n) => { item.sent = n; this.changed(); },
      });
      item.sent = item.size;
      item.state = 'processing';
      item.serverStatus = 'pending';
      this.watch(item);
    } catch (err) {
      this.settle(item.batch, item.uploadId);
      if (item.controller.signal.aborted || (err instanceof UploadError && err.code === 'cancelled')) {
        item.state = 'cancelled';
        return;
      }
      item.state = 'failed';
      item.error = describeError(err);
    }
  }

  /** Live results under the security rules: the batch's upload records (one query for
   *  the batch), an archive's per-file results as they come, a file's once it is final. */
  private watch(item: UploadItem): void {
    const { db, auth } = getBackend();
    const uid = auth.currentUser?.uid;
    if (!uid || !item.uploadId || !item.batch) return;
    const watch = this.watchBatch(uid, item.batch);
    watch.items.set(item.uploadId, item);
    const known = watch.latest.get(item.uploadId);
    if (known) this.applyRecord(item, known);
    if (item.kind === 'zip') {
      const files = query(collection(db, 'uploads', item.uploadId, 'files'), where('owner', '==', uid));
      item.unsubscribe.push(onSnapshot(files, (snap) => {
        item.results = snap.docs.map((d) => fileResult(d.id, d.data()))
          .sort((a, b) => a.id.localeCompare(b.id));
        this.changed();
      }));
    }
  }

  private watchBatch(uid: string, batch: string): BatchWatch {
    const existing = this.watches.get(batch);
    if (existing) return existing;
    const { db } = getBackend();
    const items = new Map<string, UploadItem>();
    const latest = new Map<string, DocumentData>();
    const records = query(collection(db, 'uploads'), where('owner', '==', uid),
      where('batch', '==', batch));
    const unsubscribe = onSnapshot(records, (snap) => {
      for (const change of snap.docChanges()) {
        const data = change.doc.data();
        latest.set(change.doc.id, data);
        const item = items.get(change.doc.id);
        if (item) this.applyRecord(item, data);
      }
      this.changed();
    }, (err) => {
      for (const item of items.values()) item.error = `Live results unavailable: ${err.message}`;
      this.changed();
    });
    const watch = { unsubscribe, items, latest };
    this.watches.set(batch, watch);
    return watch;
  }

  private applyRecord(item: UploadItem, data: DocumentData): void {
    item.serverStatus = data.status;
    item.counts = data.counts;
    if (FINAL.has(data.status) && item.state === 'processing') {
      item.state = 'done';
      if (item.kind !== 'zip') this.singleResult(item, data.counts ?? {});
      this.settle(item.batch, item.uploadId);
    }
    this.changed();
  }

  /** The batch's query is dropped once none of its uploads can change any more. */
  private settle(batch: string | undefined, uploadId: string | undefined): void {
    if (!batch || !uploadId) return;
    const open = this.open.get(batch);
    open?.delete(uploadId);
    if (open && open.size === 0) {
      this.open.delete(batch);
      this.watches.get(batch)?.unsubscribe();
      this.watches.delete(batch);
    }
  }

  /** A single file's result. Stored or already stored: the record's counts (computed by
   *  the server from its results) say it, so a folder of files costs no extra reads;
   *  anything else is read once for its message (the upload is final: it is written). */
  private singleResult(item: UploadItem, counts: Record<string, number>): void {
    const plain = ['stored', 'duplicate'].find((k) => counts[k] === 1 && counts.total === 1);
    if (plain) item.results = [{ id: '0', name: item.picked.path, status: plain }];
    else this.readResults(item);
  }

  private readResults(item: UploadItem): void {
    this.resultQueue.push(item);
    this.nextResults();
  }

  private nextResults(): void {
    while (this.readingResults < RESULT_READS && this.resultQueue.length) {
      const item = this.resultQueue.shift()!;
      const { db, auth } = getBackend();
      const uid = auth.currentUser?.uid;
      if (!uid || !item.uploadId) continue;
      this.readingResults += 1;
      getDocs(query(collection(db, 'uploads', item.uploadId, 'files'), where('owner', '==', uid)))
        .then((snap) => {
          item.results = snap.docs.map((d) => fileResult(d.id, d.data()))
            .sort((a, b) => a.id.localeCompare(b.id));
        })
        .catch((err) => { item.error = `Results unavailable: ${err.message}`; })
        .finally(() => {
          this.readingResults -= 1;
          this.changed();
          this.nextResults();
        });
    }
  }
}
