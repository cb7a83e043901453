// The sign-in bridge of the OHIF Viewer under /ohif/ (built to /ohif/pacs-auth.js, loaded
// before app-config.js). OHIF runs in the same tab and origin as the web client, so the
// Firebase session the web client keeps in sessionStorage is found here too; this script
// signs nobody in. It gives app-config.js:
//   window.pacsAuth.ready     resolves once the session is known (redirects to /signin
//                             without one),
//   window.pacsAuth.header()  {Authorization: 'Bearer <ID token>'}, synchronous as OHIF's
//                             userAuthenticationService.getAuthorizationHeader must be;
//                             the token is kept fresh by Firebase (onIdTokenChanged) and
//                             refreshed ahead of its expiry,
//   window.pacsAuth.unauthenticated()  a 401/403 from DICOMweb: force a refresh, and
//                             back to /signin when there is no session any more.
// The token is never put in a URL. Automatic logoff applies here as on the web client.
// With `?share=1` (the share page's "Open in OHIF"), nobody is signed in: the requests carry
// the share this tab opened on /view instead (share.ts), and without one OHIF goes back to
// /view, which says why.
import { initializeApp } from 'firebase/app';
import {
  browserSessionPersistence, connectAuthEmulator, inMemoryPersistence, initializeAuth,
  onIdTokenChanged, signOut, type Auth,
} from 'firebase/auth';
import { loadConfig } from '../src/config';
import { IdleTimer } from '../src/idle';
import { isShareUrl, readShare } from '../src/ohif-access';
import { exchangeShare, shareKind, shareViews } from './share';
import { TokenHolder } from './token';

const ACTIVITY_KEY = 'pacs.last-activity';

export interface PacsAuth {
  ready: Promise<void>;
  header(): Record<string, string>;
  unauthenticated(): void;
}

let auth: Auth | null = null;
const tokens = new TokenHolder(async (force) => {
  const user = auth?.currentUser;
  return user ? user.getIdToken(force) : null;
});
const shareMode = isShareUrl(window.location.search);
let holder = tokens;

function toSignIn(): void {
  const here = window.location.pathname + window.location.search;
  window.location.assign(`/signin?next=${encodeURIComponent(here)}`);
}

function startIdle(seconds: number): void {
  const idle = new IdleTimer({
    timeoutMs: seconds * 1000,
    onTimeout: () => {
      const minutes = Math.max(1, Math.round(seconds / 60));
      sessionStorage.setItem('pacs.signout-reason', `You were signed out after ${seconds < 60
        ? `${seconds} seconds` : `${minutes} minutes`} without activity.`);
      if (auth) void signOut(auth).finally(toSignIn);
    },
  });
  let lastWrite = 0;
  const bump = () => {
    const now = Date.now();
    idle.activity(now);
    if (now - lastWrite > 5000) {
      lastWrite = now;
      try { localStorage.setItem(ACTIVITY_KEY, String(now)); } catch { /* ignore */ }
    }
  };
  for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
    window.addEventListener(type, bump, { passive: true, capture: true });
  }
  window.addEventListener('storage', (e) => {
    if (e.key === ACTIVITY_KEY && e.newValue) idle.activity(Number(e.newValue));
  });
  document.addEventListener('visibilitychange', () => idle.check());
}

/** The share recipient's start: a valid view of the tab's share, or back to /view. */
async function startShare(apiBase: string): Promise<void> {
  const { token } = readShare();
  if (token) {
    holder = new TokenHolder(shareViews(token, (t) => exchangeShare(apiBase, t)), undefined,
      shareKind(token));
    await holder.refresh(false).catch(() => undefined);
    if (holder.current) return;
  }
  window.location.assign('/view');
  return new Promise(() => undefined); // leaving the page: OHIF never starts
}

async function start(): Promise<void> {
  const config = await loadConfig();
  if (shareMode) return startShare(config.apiBase);
  const app = initializeApp({ apiKey: config.apiKey, projectId: config.projectId,
    authDomain: config.authDomain, appId: config.appId });
  // The same persistence as the web client: its tab session is read, nothing outlives the tab.
  auth = initializeAuth(app, { persistence: [browserSessionPersistence, inMemoryPersistence] });
  const emu = config.emulators;
  if (emu?.auth) {
    connectAuthEmulator(auth, emu.auth === 'same-origin' ? window.location.origin : emu.auth,
      { disableWarnings: true });
  }
  await auth.authStateReady();
  if (!auth.currentUser) {
    toSignIn();
    return new Promise(() => undefined); // leaving the page: OHIF never starts
  }
  await tokens.refresh(false);
  // A listener keeps Firebase refreshing the token ahead of its expiry; a sign-out in this
  // tab (idle logoff) ends the viewer.
  onIdTokenChanged(auth, (user) => {
    if (!user) {
      tokens.set(null);
      toSignIn();
      return;
    }
    void user.getIdToken().then((t) => tokens.set(t));
  });
  startIdle(config.idleTimeoutSeconds);
}

const pacsAuth: PacsAuth = {
  ready: start(),
  header: () => holder.header(),
  unauthenticated() {
    // A share refused is not fixed by a new view (each would count one): OHIF shows the error.
    if (shareMode) return;
    void tokens.refresh(true).then(() => { if (!tokens.current) toSignIn(); }, toSignIn);
  },
};

(window as unknown as { pacsAuth: PacsAuth }).pacsAuth = pacsAuth;
