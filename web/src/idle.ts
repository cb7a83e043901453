// Automatic logoff (HIPAA §164.312(a)(2)(iii)): sign out after a period without input.
// A warning shows shortly before; any input resets the clock. Other tabs of the same
// session share the last-activity time through localStorage.

export interface IdleOptions {
  timeoutMs: number;
  warnMs?: number;
  onWarn?: (msLeft: number) => void;
  onActive?: () => void;
  onTimeout: () => void;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export class IdleTimer {
  private last: number;
  private handle: unknown = null;
  private warned = false;
  private stopped = false;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private opts: IdleOptions) {
    this.now = opts.now ?? (() => Date.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.last = this.now();
    this.schedule();
  }

  get warnMs(): number {
    return Math.min(this.opts.warnMs ?? 60_000, Math.floor(this.opts.timeoutMs / 2));
  }

  /** Input happened (here or in another tab at `at`). */
  activity(at: number = this.now()): void {
    if (this.stopped || at < this.last) return;
    this.last = at;
    if (this.warned) {
      this.warned = false;
      this.opts.onActive?.();
    }
    this.schedule();
  }

  lastActivity(): number {
    return this.last;
  }

  stop(): void {
    this.stopped = true;
    if (this.handle !== null) this.clearTimer(this.handle);
    this.handle = null;
  }

  private schedule(): void {
    if (this.handle !== null) this.clearTimer(this.handle);
    const idle = this.now() - this.last;
    const left = this.opts.timeoutMs - idle;
    if (left <= 0) {
      this.stop();
      this.opts.onTimeout();
      return;
    }
    const untilWarn = left - this.warnMs;
    if (untilWarn > 0) {
      this.handle = this.setTimer(() => this.schedule(), untilWarn);
      return;
    }
    if (!this.warned) {
      this.warned = true;
      this.opts.onWarn?.(left);
    }
    this.handle = this.setTimer(() => this.schedule(), Math.min(left, 1000));
  }

  /** Re-evaluate now (after the computer slept, timers may fire late). */
  check(): void {
    if (!this.stopped) this.schedule();
  }
}
