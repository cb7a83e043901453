// The credential OHIF's requests carry (see auth-bridge.ts): the session's ID token, or a
// share recipient's view; held for synchronous reads, as OHIF's getAuthorizationHeader is
// synchronous, and refreshed ahead of its expiry.

/** Refresh a token this long before it expires (Firebase ID tokens live one hour). */
export const REFRESH_AHEAD_MS = 5 * 60 * 1000;

/** What a held credential is: its expiry, its headers, and how early to refresh it. */
export interface CredentialKind {
  expiry(value: string): number;
  header(value: string): Record<string, string>;
  refreshAheadMs: number;
}

/** The session's Firebase ID token, sent as the bearer. */
export const ID_TOKEN: CredentialKind = {
  expiry: (jwt) => tokenExpiry(jwt),
  header: (jwt) => ({ Authorization: `Bearer ${jwt}` }),
  refreshAheadMs: REFRESH_AHEAD_MS,
};

/** The `exp` of a JWT in milliseconds (0 when unreadable). */
export function tokenExpiry(jwt: string): number {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return Number(JSON.parse(atob(part)).exp) * 1000 || 0;
  } catch {
    return 0;
  }
}

export class TokenHolder {
  private token: string | null = null;
  private expiresAt = 0;
  private pending: Promise<void> | null = null;

  /** `fetchToken(force)`: the signed-in user's ID token (Firebase's getIdToken), or null
   *  without a user. */
  constructor(private readonly fetchToken: (force: boolean) => Promise<string | null>,
    private readonly now: () => number = () => Date.now(),
    private readonly kind: CredentialKind = ID_TOKEN) {}

  /** A token Firebase handed over (onIdTokenChanged), or null after a sign-out. */
  set(token: string | null): void {
    this.token = token;
    this.expiresAt = token ? this.kind.expiry(token) : 0;
  }

  /** Fetch a token now (forced: a new one even if the current one is valid); calls made
   *  while one is under way share it. */
  refresh(force: boolean): Promise<void> {
    if (!this.pending) {
      this.pending = this.fetchToken(force).then((t) => this.set(t))
        .finally(() => { this.pending = null; });
    }
    return this.pending;
  }

  get current(): string | null {
    return this.token;
  }

  /** The headers for a request now (none without a credential); a credential close to
   *  expiry starts a refresh in the background (this request still carries the current,
   *  valid one). */
  header(): Record<string, string> {
    if (this.token && this.expiresAt - this.now() < this.kind.refreshAheadMs) void this.refresh(false).catch(() => undefined);
    return this.token ? this.kind.header(this.token) : {};
  }
}
