import { describe, expect, it } from 'vitest';
import { REFRESH_AHEAD_MS, TokenHolder, tokenExpiry } from '../ohif/token';

/** An unsigned JWT (the emulator's kind) expiring at `expMs`. */
function jwt(expMs: number, sub = 'u1'): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none' })}.${b64({ sub, exp: Math.floor(expMs / 1000) })}.`;
}

describe('the token OHIF sends', () => {
  it('reads the expiry of a JWT, 0 when unreadable', () => {
    expect(tokenExpiry(jwt(1_700_000_000_000))).toBe(1_700_000_000_000);
    expect(tokenExpiry('not-a-jwt')).toBe(0);
  });

  it('is no header without a session and the bearer with one', async () => {
    const now = 1_000_000;
    const holder = new TokenHolder(async () => null, () => now);
    expect(holder.header()).toEqual({});
    const token = jwt(now + 3_600_000);
    holder.set(token);
    expect(holder.header()).toEqual({ Authorization: `Bearer ${token}` });
    holder.set(null);
    expect(holder.header()).toEqual({});
  });

  it('is refreshed once, in the background, when close to expiry', async () => {
    let now = 5_000_000;
    const calls: boolean[] = [];
    let release!: (t: string) => void;
    const holder = new TokenHolder((force) => {
      calls.push(force);
      return new Promise<string>((resolve) => { release = resolve; });
    }, () => now);
    const old = jwt(now + 3_600_000, 'old');
    holder.set(old);
    expect(holder.header().Authorization).toBe(`Bearer ${old}`);
    expect(calls).toEqual([]); // valid for an hour: nothing fetched
    now += 3_600_000 - REFRESH_AHEAD_MS + 1000; // within five minutes of expiry
    expect(holder.header().Authorization).toBe(`Bearer ${old}`); // still valid: sent as is
    expect(holder.header().Authorization).toBe(`Bearer ${old}`);
    expect(calls).toEqual([false]); // one refresh for both requests
    const fresh = jwt(now + 3_600_000, 'fresh'); // a new hour from now
    release(fresh);
    await holder.refresh(false);
    expect(holder.header().Authorization).toBe(`Bearer ${fresh}`);
    expect(calls).toEqual([false]);
  });

  it('forces a new token when DICOMweb refused the current one', async () => {
    const calls: boolean[] = [];
    const holder = new TokenHolder(async (force) => { calls.push(force); return null; });
    holder.set(jwt(Date.now() + 3_600_000));
    await holder.refresh(true);
    expect(calls).toEqual([true]);
    expect(holder.current).toBeNull(); // signed out meanwhile: no header
    expect(holder.header()).toEqual({});
  });
});
