// The privacy API (functions/privacy_requests, behind /api/privacy).
import { api } from './api';

export interface ConsentState {
  analytics: 'granted' | 'withdrawn' | 'not_given';
  policy_version: string | null;
  current_policy_version: string;
  needs_renewal: boolean;
  active: boolean;
  decided_at: string | null;
  ledger?: { id: string; action: string; granted: boolean; policy_version: string; at: string;
    revoke_shares?: boolean; shares_revoked?: number }[];
}

export interface Profile {
  display_name: string;
  email: string;
  adult_attested: boolean;
  restricted: boolean;
  created_at: string;
  [key: string]: unknown;
}

export interface PrivacyRequest {
  id: string;
  type: string;
  status: 'received' | 'in_progress' | 'completed' | 'rejected';
  reason: string | null;
  received_at: string;
  due_at: string;
  completed_at: string | null;
  receipt_id?: string;
  details?: Record<string, unknown>;
  started_by?: { by: string; verified_sign_in_at?: string; name?: string; note?: string } | null;
  // An export's result never holds a link: mintExportLink asks for one when it is needed.
  result?: { available_until?: string; expired?: boolean; size?: number; sha256?: string;
    [key: string]: unknown };
}

/** A short-lived link to a completed export's archive (minutes; recent sign-in only). */
export interface ExportLink {
  request_id: string;
  download_url: string;
  expires_at: string;
  size?: number;
  sha256?: string;
  available_until?: string;
}

export const getProfile = () =>
  api<{ profile: Profile | null; consent: ConsentState; history: unknown[] }>('/privacy/profile');
export const createProfile = (body: { adult: boolean; display_name?: string }) =>
  api<{ profile: Profile; created: boolean }>('/privacy/profile', { method: 'POST', body });
export const rectifyProfile = (body: { display_name?: string; email?: string }) =>
  api<{ changes: Record<string, { from: string; to: string }> }>('/privacy/profile',
    { method: 'PATCH', body });
/** Ask for a verify-and-change link to ``email`` (a recent sign-in only): the sign-in email
 *  changes when the link sent to the new address is opened. */
export const changeSignInEmail = (email: string) =>
  api<{ verification_sent_to: string; request: PrivacyRequest }>('/privacy/profile/sign-in-email',
    { method: 'POST', body: { email } });
export const listRequests = () => api<{ requests: PrivacyRequest[] }>('/privacy/requests');
export const getRequest = (id: string) =>
  api<{ request: PrivacyRequest }>(`/privacy/requests/${encodeURIComponent(id)}`);
export const submitRequest = (type: 'export' | 'erasure') =>
  api<{ request: PrivacyRequest }>('/privacy/requests', { method: 'POST', body: { type } });
export const mintExportLink = (id: string) =>
  api<ExportLink>(`/privacy/requests/${encodeURIComponent(id)}/download`, { method: 'POST' });
export const restrict = (body: { restricted: boolean; type?: 'restriction' | 'objection';
  study_id?: string }) => api<{ restricted: boolean; changed: boolean }>('/privacy/restrict',
  { method: 'POST', body });
export const getConsent = () => api<ConsentState>('/privacy/consent');
export const setServerConsent = (analytics: boolean, revokeShares = false) =>
  api<ConsentState & { shares_revoked: number }>('/privacy/consent',
    { method: 'POST', body: revokeShares ? { analytics, revoke_shares: true } : { analytics } });
export const getReceipt = (id: string) =>
  api<{ receipt: Record<string, any> }>(`/privacy/receipts/${encodeURIComponent(id)}`, { auth: false });

export const REQUEST_TYPE_TEXT: Record<string, string> = {
  export: 'Export of my data',
  erasure: 'Deletion of my account',
  rectification: 'Correction of my profile',
  restriction: 'Restriction of processing',
  objection: 'Objection to processing',
  restriction_lifted: 'Restriction lifted',
};

export const REQUEST_STATUS_TEXT: Record<string, string> = {
  received: 'Received',
  in_progress: 'In progress',
  completed: 'Completed',
  rejected: 'Rejected',
};
