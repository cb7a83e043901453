// The upload queue: each file is announced to the upload endpoint, sent straight to
// Storage through its resumable session, then followed live in Firestore until the server
// has a result for every file in it.
import { doc, collection, query, where, onSnapshot, type Unsubscribe } from 'firebase/firestore';
import { api, describeError } from '../api';
import { getBackend } from '../firebase';
import { RateMeter } from '../format';
import { contentTypeFor, sniff, type PickedFile } from './files';
import { uploadResumable, UploadError } from './resumable';

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

export class UploadManager {
  items: UploadItem[] = [];
  private nextKey = 1;
  private running = 0;
  private meter = new RateMeter();
  private listeners = new Set<() => void>();
  private scheduled = false;

  constructor(public concurrency = 3) {}

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
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
      this.changed();
    }
  }

  retry(item: UploadItem): void {
    if (item.state !== 'failed' && item.state !== 'cancelled') return;
    item.controller = new AbortController();
    item.state = 'queued';
    item.sent = 0;
    item.error = undefined;
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
    this.items = [];
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const next = this.items.find((it) => it.state === 'queued');
      if (!next) return;
      this.running += 1;
      next.state = 'starting';
      this.run(next).finally(() => {
        this.running -= 1;
        this.changed();
        this.pump();
      });
    }
  }

  private async run(item: UploadItem): Promise<void> {
    const { file, path } = item.picked;
    try {
      if (file.size === 0) {
        item.state = 'skipped';
        item.error = 'This file is empty.';
        return;
      }
      const kind = await sniff(file);
      if (kind === 'other') {
        item.state = 'skipped';
        item.error = 'Not uploaded: this is neither a DICOM file nor a ZIP archive.';
        return;
      }
      const started = await api<{ upload_id: string; session_url: string }>('/uploads', {
        method: 'POST', body: { filename: path.slice(-1024), size: file.size,
          content_type: contentTypeFor(kind) }, signal: item.controller.signal });
      item.uploadId = started.upload_id;
      item.state = 'uploading';
      this.changed();
      await uploadResumable(file, started.session_url, {
        signal: item.controller.signal,
        onProgress: (n) => { item.sent = n; this.changed(); },
      });
      item.sent = item.size;
      item.state = 'processing';
      item.serverStatus = 'pending';
      this.watch(item);
    } catch (err) {
      if (item.controller.signal.aborted || (err instanceof UploadError && err.code === 'cancelled')) {
        item.state = 'cancelled';
        return;
      }
      item.state = 'failed';
      item.error = describeError(err);
    }
  }

  /** Live results under the security rules: the upload record and its per-file results. */
  private watch(item: UploadItem): void {
    const { db, auth } = getBackend();
    const uid = auth.currentUser?.uid;
    if (!uid || !item.uploadId) return;
    const uploadRef = doc(db, 'uploads', item.uploadId);
    item.unsubscribe.push(onSnapshot(uploadRef, (snap) => {
      const data = snap.data();
      if (!data) return;
      item.serverStatus = data.status;
      item.counts = data.counts;
      if (FINAL.has(data.status)) item.state = 'done';
      this.changed();
    }, (err) => {
      item.error = `Live results unavailable: ${err.message}`;
      this.changed();
    }));
    const files = query(collection(db, 'uploads', item.uploadId, 'files'), where('owner', '==', uid));
    item.unsubscribe.push(onSnapshot(files, (snap) => {
      item.results = snap.docs.map((d) => {
        const r = d.data();
        return { id: d.id, name: String(r.name ?? ''), status: String(r.status), reason: r.reason,
          message: r.message };
      }).sort((a, b) => a.id.localeCompare(b.id));
      this.changed();
    }));
  }
}
