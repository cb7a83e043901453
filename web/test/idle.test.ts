import { describe, expect, it } from 'vitest';
import { IdleTimer } from '../src/idle';

function clock() {
  let now = 0;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let next = 1;
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => { const id = next++; timers.push({ at: now + ms, fn, id }); return id; },
    clearTimer: (id: unknown) => { const i = timers.findIndex((t) => t.id === id); if (i >= 0) timers.splice(i, 1); },
    advance(ms: number) {
      const end = now + ms;
      while (true) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

describe('automatic logoff', () => {
  it('warns, then signs out after the idle time', () => {
    const c = clock();
    const events: string[] = [];
    new IdleTimer({ timeoutMs: 15 * 60_000, warnMs: 60_000, onWarn: () => events.push('warn'),
      onTimeout: () => events.push('out'), ...c });
    c.advance(13 * 60_000);
    expect(events).toEqual([]);
    c.advance(60_000 + 1);
    expect(events).toEqual(['warn']);
    c.advance(60_000);
    expect(events).toEqual(['warn', 'out']);
  });
  it('any activity restarts the clock and clears the warning', () => {
    const c = clock();
    const events: string[] = [];
    const t = new IdleTimer({ timeoutMs: 10_000, warnMs: 2_000, onWarn: () => events.push('warn'),
      onActive: () => events.push('active'), onTimeout: () => events.push('out'), ...c });
    c.advance(9_000);
    t.activity();
    expect(events).toEqual(['warn', 'active']);
    c.advance(9_000);
    expect(events).toEqual(['warn', 'active', 'warn']);
    c.advance(1_001);
    expect(events.at(-1)).toBe('out');
  });
  it('activity from another tab counts; older activity does not', () => {
    const c = clock();
    let out = false;
    const t = new IdleTimer({ timeoutMs: 10_000, onTimeout: () => { out = true; }, ...c });
    c.advance(6_000);
    t.activity(5_500);
    t.activity(1_000);
    expect(t.lastActivity()).toBe(5_500);
    c.advance(9_000);
    expect(out).toBe(false);
    c.advance(1_000);
    expect(out).toBe(true);
  });
  it('a late check after sleep signs out at once', () => {
    const c = clock();
    let out = 0;
    let slept = 0;
    const t = new IdleTimer({ timeoutMs: 10_000, onTimeout: () => { out += 1; }, ...c,
      now: () => c.now() + slept });
    slept = 60_000; // the computer slept; no timer fired
    t.check();
    expect(out).toBe(1);
    t.activity();
    t.check();
    expect(out).toBe(1);
  });
});
