// One policy version (issue 16, item 2): the consent choice is recorded under the policy
// file's "Effective date", read at build time, so a new effective date asks everyone again.
// tests/e2e/test_policy_version.py also runs this file against a policy with a new date.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONSENT_KEY, CONSENT_VERSION, needsBanner, readConsent, setConsent,
  type KeyValueStore } from '../src/consent';
import { policyVersionOf } from '../src/policy';

const policyFile = process.env.PACS_POLICY_FILE
  || resolve(import.meta.dirname, '../../../shared/privacy-policy.txt');

function store(initial: Record<string, string> = {}): KeyValueStore {
  const data = { ...initial };
  return { getItem: (k) => data[k] ?? null, setItem: (k, v) => { data[k] = v; },
    removeItem: (k) => { delete data[k]; } };
}

describe('policy version', () => {
  it('is the effective date of the policy the build read', () => {
    expect(CONSENT_VERSION).toBe(policyVersionOf(readFileSync(policyFile, 'utf8')));
    expect(CONSENT_VERSION).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });
  it('reads only a whole "Effective date" line', () => {
    expect(policyVersionOf('Privacy Policy\r\n\r\nEffective date: 2031-04-05\r\n')).toBe('2031-04-05');
    expect(() => policyVersionOf('Last updated: 2026-02-08')).toThrow(/Effective date/);
    expect(() => policyVersionOf('Effective date: soon')).toThrow(/Effective date/);
  });
  it('asks again for a choice made under any other effective date', () => {
    const earlier = process.env.PACS_PREVIOUS_POLICY_VERSION ?? '2001-01-01';
    expect(earlier).not.toBe(CONSENT_VERSION);
    const s = store({ [CONSENT_KEY]: JSON.stringify({ analytics: true, policyVersion: earlier }) });
    expect(needsBanner(s)).toBe(true);
    expect(readConsent(s)).toBeNull();
    expect(setConsent(s, true).policyVersion).toBe(CONSENT_VERSION);
    expect(needsBanner(s)).toBe(false);
  });
});
