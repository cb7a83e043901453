// Calls to the HTTP functions behind Hosting's /api rewrites, with the caller's ID token.
import { getBackend } from './firebase';

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

/** Plain-language text for the error codes a person can act on. */
export const ERROR_TEXT: Record<string, string> = {
  network: 'The service could not be reached. Check your connection and try again.',
  missing_token: 'Please sign in again.',
  invalid_token: 'Your session has expired. Please sign in again.',
  revoked_token: 'Your session was ended. Please sign in again.',
  user_not_found: 'This account no longer exists.',
  not_found: 'Not found: it may have been deleted, or the link is no longer valid.',
  restricted: 'Processing of this study or account is restricted. Lift the restriction in the Privacy centre to use it.',
  quota_exceeded: 'Your storage quota is full. Delete studies to make room.',
  rate_limited: 'Too many uploads in the last hour. Please try again later.',
  too_large: 'This file is larger than the upload limit.',
  bad_content_type: 'Only DICOM files and ZIP archives can be uploaded.',
  recent_sign_in_required: 'For your protection, please confirm your password to continue.',
  not_implemented: 'This part of the service is not available yet.',
  internal: 'Something went wrong on our side. Please try again.',
  profile_required: 'Please finish setting up your account first.',
  erasure_in_progress: 'Your account is being deleted.',
};

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    return ERROR_TEXT[err.code] ?? err.message ?? `Request failed (HTTP ${err.status}).`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | undefined | null>;
  /** Send the signed-in user's ID token (default true). */
  auth?: boolean;
  signal?: AbortSignal;
}

export function buildUrl(base: string, path: string,
  query?: RequestOptions['query']): string {
  const url = `${base}${path.startsWith('/') ? path : '/' + path}`;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && String(v).trim() !== '') params.set(k, String(v).trim());
  }
  const qs = params.toString();
  return qs ? `${url}?${qs}` : url;
}

export async function api<T = any>(path: string, opts: RequestOptions = {}): Promise<T> {
  const { auth, config } = getBackend();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.auth !== false) {
    const user = auth.currentUser;
    if (!user) throw new ApiError(401, 'missing_token', 'sign in first');
    headers.Authorization = `Bearer ${await user.getIdToken()}`;
  }
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let resp: Response;
  try {
    resp = await fetch(buildUrl(config.apiBase, path, opts.query), {
      method: opts.method ?? (body ? 'POST' : 'GET'), headers, body, signal: opts.signal,
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'network error');
  }
  const text = await resp.text();
  let data: any = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`,
      data?.message ?? `HTTP ${resp.status}`);
  }
  return data as T;
}
