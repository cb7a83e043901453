// The analytics/tracking consent: asked on first visit, kept in localStorage under
// CONSENT_KEY (the privacy policy tells people they can clear it there), mirrored to the
// consent ledger when signed in. Nothing analytic leaves the page before a "granted".

import { version } from 'virtual:privacy-policy';

export const CONSENT_KEY = 'pacs.tracking-consent';
/** The policy version a choice is made under: the policy's effective date, read at build
 * time (vite.config.ts); a new effective date asks everyone again. */
export const CONSENT_VERSION: string = version;

export interface ConsentChoice {
  analytics: boolean;
  decidedAt: string;
  policyVersion: string;
}

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export function readConsent(store: KeyValueStore): ConsentChoice | null {
  let raw: string | null;
  try {
    raw = store.getItem(CONSENT_KEY);
  } catch {
    return null;
  }
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    if (typeof value?.analytics !== 'boolean') return null;
    // A choice made under another policy version must be asked again.
    if (value.policyVersion !== CONSENT_VERSION) return null;
    return { analytics: value.analytics, decidedAt: String(value.decidedAt ?? ''),
      policyVersion: value.policyVersion };
  } catch {
    return null;
  }
}

export function writeConsent(store: KeyValueStore, analytics: boolean,
  now: Date = new Date()): ConsentChoice {
  const choice = { analytics, decidedAt: now.toISOString(), policyVersion: CONSENT_VERSION };
  try {
    store.setItem(CONSENT_KEY, JSON.stringify(choice));
  } catch {
    /* storage disabled: the choice holds for this page only */
  }
  return choice;
}

export function needsBanner(store: KeyValueStore): boolean {
  return readConsent(store) === null;
}

export function analyticsAllowed(store: KeyValueStore): boolean {
  return readConsent(store)?.analytics === true;
}

type Listener = (choice: ConsentChoice | null) => void;
const listeners = new Set<Listener>();

export function onConsentChange(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setConsent(store: KeyValueStore, analytics: boolean): ConsentChoice {
  const choice = writeConsent(store, analytics);
  for (const fn of listeners) fn(choice);
  return choice;
}
