// The main thread's side of transcode.worker.ts: a promise per file.
type Pending = { resolve: (b: ArrayBuffer) => void; reject: (e: Error) => void };

export class Transcoder {
  private worker?: Worker;
  private pending = new Map<number, Pending>();
  private next = 0;

  private start(): Worker {
    const worker = new Worker(new URL('./transcode.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (e: MessageEvent<{ id: number; buffer?: ArrayBuffer; error?: string }>) => {
      const p = this.pending.get(e.data.id);
      this.pending.delete(e.data.id);
      if (e.data.buffer) p?.resolve(e.data.buffer);
      else p?.reject(new Error(e.data.error ?? 'the image could not be converted'));
    };
    worker.onerror = (e) => this.fail(new Error(e.message || 'the image converter did not start'));
    return worker;
  }

  /** The file in a transfer syntax dwv reads; `buffer` is handed over to the worker. */
  transcode(buffer: ArrayBuffer): Promise<ArrayBuffer> {
    this.worker ??= this.start();
    const id = (this.next += 1);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage({ id, buffer }, [buffer]);
    });
  }

  private fail(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.worker?.terminate();
    this.worker = undefined;
  }

  terminate(): void {
    this.fail(new Error('aborted'));
  }
}
