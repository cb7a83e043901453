import { describe, expect, it } from 'vitest';
import { CONSENT_KEY, CONSENT_VERSION, analyticsAllowed, needsBanner, onConsentChange, readConsent,
  setConsent, type KeyValueStore } from '../src/consent';

function store(initial: Record<string, string> = {}): KeyValueStore & { data: Record<string, string> } {
  const data = { ...initial };
  return { data, getItem: (k) => data[k] ?? null, setItem: (k, v) => { data[k] = v; },
    removeItem: (k) => { delete data[k]; } };
}

describe('consent', () => {
  it('asks on first visit and allows nothing before a choice', () => {
    const s = store();
    expect(needsBanner(s)).toBe(true);
    expect(analyticsAllowed(s)).toBe(false);
  });
  it('remembers reject and accept under the documented key', () => {
    const s = store();
    setConsent(s, false);
    expect(JSON.parse(s.data[CONSENT_KEY]).analytics).toBe(false);
    expect(needsBanner(s)).toBe(false);
    expect(analyticsAllowed(s)).toBe(false);
    setConsent(s, true);
    expect(analyticsAllowed(s)).toBe(true);
  });
  it('asks again when the value is cleared, damaged or from another policy version', () => {
    const s = store({ [CONSENT_KEY]: 'not json' });
    expect(needsBanner(s)).toBe(true);
    s.setItem(CONSENT_KEY, JSON.stringify({ analytics: true, policyVersion: '2020-01-01' }));
    expect(analyticsAllowed(s)).toBe(false);
    s.setItem(CONSENT_KEY, JSON.stringify({ analytics: true, policyVersion: CONSENT_VERSION }));
    expect(readConsent(s)?.analytics).toBe(true);
    s.removeItem(CONSENT_KEY);
    expect(needsBanner(s)).toBe(true);
  });
  it('survives storage that throws', () => {
    const broken: KeyValueStore = { getItem: () => { throw new Error('denied'); },
      setItem: () => { throw new Error('denied'); }, removeItem: () => {} };
    expect(readConsent(broken)).toBeNull();
    expect(setConsent(broken, true).analytics).toBe(true);
  });
  it('tells listeners', () => {
    const seen: boolean[] = [];
    const off = onConsentChange((c) => seen.push(!!c?.analytics));
    setConsent(store(), true);
    off();
    setConsent(store(), false);
    expect(seen).toEqual([true]);
  });
});
