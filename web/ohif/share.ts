// A share recipient's credential in OHIF (auth-bridge.ts, `?share=1`): the share token this
// tab opened on /view and a view of it, sent as `Authorization: Share <token> <view>` (never
// in a URL): OHIF's DICOMweb data source forwards only the Authorization header of its user
// authentication service, not the X-Share-* headers. DICOMweb then answers for exactly the
// shared study, and refuses once the share expires, is revoked or restricted
// (functions/pacs/keys/access.py).
import { readShare, saveShareView, viewExpiry } from '../src/ohif-access';
import type { CredentialKind } from './token';

/** Get a new view this long before the current one expires. A view lasts as long as the
 *  share's manifest links (15 minutes by default); a new one counts one view of the share,
 *  as opening the link again would, so a used-up share gets none. */
export const VIEW_REFRESH_AHEAD_MS = 30_000;

/** The share's Authorization header around a view. */
export function shareKind(token: string): CredentialKind {
  return {
    expiry: viewExpiry,
    header: (view) => ({ Authorization: `Share ${token} ${view}` }),
    refreshAheadMs: VIEW_REFRESH_AHEAD_MS,
  };
}

/** A view for the holder: the one this tab holds while it is valid (the /view page's, so
 *  opening OHIF from it counts no view), else a new exchange, kept for the tab. */
export function shareViews(token: string, exchange: (token: string) => Promise<string | null>,
  now: () => number = () => Date.now()): (force: boolean) => Promise<string | null> {
  return async (force) => {
    const { view } = readShare();
    if (!force && view && viewExpiry(view) - now() > VIEW_REFRESH_AHEAD_MS) return view;
    const fresh = await exchange(token);
    saveShareView(fresh);
    return fresh;
  };
}

/** Exchange the token for a view (POST {apiBase}/links/share/manifest, the token in the
 *  body); null when the share is gone, used up or refused. */
export async function exchangeShare(apiBase: string, token: string): Promise<string | null> {
  const resp = await fetch(`${apiBase}/links/share/manifest`, {
    method: 'POST', body: JSON.stringify({ token }),
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
  });
  if (!resp.ok) return null;
  const body = await resp.json().catch(() => null);
  return typeof body?.view === 'string' ? body.view : null;
}
