// How the OHIF Viewer (served under /ohif/, same origin, same tab) is opened, and with which
// credential: the signed-in session (web/ohif/auth-bridge.ts reads Firebase's tab session),
// or, for a share recipient, the share this tab opened on /view. A share's token and the
// view its last exchange returned are kept in sessionStorage (this tab only, never in a
// URL); OHIF sends them as `Authorization: Share <token> <view>` (web/ohif/share.ts,
// functions/pacs/keys/access.py), so OHIF reads exactly that study, while the share lasts.

export const SHARE_TOKEN_KEY = 'pacs.share-token';
export const SHARE_VIEW_KEY = 'pacs.share-view';
/** `?share=1` on OHIF's URL: read with the tab's share, not the session. A flag only. */
export const OHIF_SHARE_PARAM = 'share';

/** OHIF on one study: only the Study Instance UID is in the URL (and the share flag). A page
 *  load in this tab, not a client route, so this tab's storage goes with it. */
export function ohifUrl(studyInstanceUid: string, share = false): string {
  return `/ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(studyInstanceUid)}`
    + (share ? `&${OHIF_SHARE_PARAM}=1` : '');
}

/** Whether an OHIF page URL's query asks for the tab's share. */
export function isShareUrl(search: string): boolean {
  return new URLSearchParams(search).get(OHIF_SHARE_PARAM) === '1';
}

function store(): Storage | null {
  try { return window.sessionStorage; } catch { return null; }
}

/** Keep the view a share exchange returned (POST /share/manifest), for OHIF in this tab. */
export function saveShareView(view: string | undefined | null): void {
  const s = store();
  if (!s) return;
  if (view) s.setItem(SHARE_VIEW_KEY, view);
  else s.removeItem(SHARE_VIEW_KEY);
}

/** The tab's share token and its last view (null when absent). */
export function readShare(): { token: string | null; view: string | null } {
  const s = store();
  return { token: s?.getItem(SHARE_TOKEN_KEY) ?? null, view: s?.getItem(SHARE_VIEW_KEY) ?? null };
}

/** Forget the tab's share (sign-out). */
export function forgetShare(): void {
  store()?.removeItem(SHARE_TOKEN_KEY);
  store()?.removeItem(SHARE_VIEW_KEY);
}

/** When a view stops being accepted, in milliseconds (0 when unreadable): a view is
 *  `{share id}.{number}.{expiry, Unix seconds}.{MAC}` (functions/pacs/links/shares.py). */
export function viewExpiry(view: string): number {
  const match = /^[0-9a-f]{20}\.[0-9]{1,9}\.([0-9]{1,12})\.[0-9a-f]{32}$/.exec(view);
  return match ? Number(match[1]) * 1000 : 0;
}
