// API keys for DICOMweb tools (functions/privacy_requests /keys, behind /api/privacy).
import { api } from './api';

export interface ApiKey {
  key_id: string;
  name: string;
  scope: 'read' | 'read-write';
  hint: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
  revoked: boolean;
  revoked_at: string | null;
  status: 'active' | 'suspended' | 'expired' | 'revoked';
}

/** A key just created: `key` is the key itself, shown this once and never again. */
export type CreatedKey = ApiKey & { key: string };

export const listKeys = () => api<{ keys: ApiKey[]; suspended: boolean }>('/privacy/keys');
export const createKey = (body: { name: string; scope: ApiKey['scope']; expires_in_days: number }) =>
  api<CreatedKey>('/privacy/keys', { method: 'POST', body });
export const revokeKey = (id: string) =>
  api<ApiKey>(`/privacy/keys/${encodeURIComponent(id)}`, { method: 'DELETE' });

export const KEY_STATUS_TEXT: Record<ApiKey['status'], string> = {
  active: 'Active',
  suspended: 'Suspended (account restricted)',
  expired: 'Expired',
  revoked: 'Revoked',
};
