// The one gate for analytics: track() sends nothing unless the visitor accepted analytics
// (consent.ts). Signed-in events go to the privacy API (which checks consent again and
// counts them per day with no user identifier); anonymous ones only to a configured sink.
import { analyticsAllowed } from './consent';
import { getBackend } from './firebase';
import { api } from './api';

export const EVENTS = ['page_view', 'study_list_viewed', 'study_opened', 'search_used',
  'upload_started', 'share_created', 'export_requested'] as const;
export type AnalyticsEvent = typeof EVENTS[number];

let consentSynced: Promise<unknown> = Promise.resolve();

/** Signed-in events wait until this browser's choice has reached the consent ledger (the
 *  mirror main.ts starts at sign-in and on every change): sent before it, the server would
 *  refuse them as given without consent. The choice is read again once it has. */
export function afterConsentSync(sync: Promise<unknown>): void {
  consentSynced = sync.catch(() => {});
}

export function track(event: AnalyticsEvent, studyId?: string): void {
  if (!analyticsAllowed(window.localStorage)) return;
  const { auth, config } = getBackend();
  if (auth.currentUser) {
    const body = studyId ? { event, study_id: studyId } : { event };
    void consentSynced
      .then(() => analyticsAllowed(window.localStorage) && auth.currentUser
        ? api('/privacy/analytics', { method: 'POST', body }) : undefined)
      .catch(() => { /* analytics never disturbs the user */ });
  }
  if (config.analyticsEndpoint) {
    void fetch(config.analyticsEndpoint, { method: 'POST', keepalive: true, credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event, at: new Date().toISOString(), signedIn: !!auth.currentUser }) })
      .catch(() => {});
  }
}
