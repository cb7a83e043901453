// Who is signed in, sign-out (by hand and after idle time), and the re-authentication the
// privacy endpoints demand (a sign-in at most a few minutes old).
import { EmailAuthProvider, reauthenticateWithCredential, signOut, type User } from 'firebase/auth';
import { getBackend } from './firebase';
import { IdleTimer } from './idle';
import { forgetShare } from './ohif-access';
import { field, h, modal, toast } from './ui';

/** Set while the sign-up form creates the profile (no second 18+ prompt meanwhile). */
export const flags = { signingUp: false };

const ACTIVITY_KEY = 'pacs.last-activity';
let idle: IdleTimer | null = null;
let warning: HTMLElement | null = null;

export function currentUser(): User | null {
  return getBackend().auth.currentUser;
}

export async function signOutNow(reason?: string): Promise<void> {
  stopIdle();
  await signOut(getBackend().auth);
  forgetShare();
  if (reason) sessionStorage.setItem('pacs.signout-reason', reason);
}

export function takeSignOutReason(): string | null {
  const r = sessionStorage.getItem('pacs.signout-reason');
  sessionStorage.removeItem('pacs.signout-reason');
  return r;
}

export function startIdle(onSignedOut: () => void): void {
  stopIdle();
  const seconds = getBackend().config.idleTimeoutSeconds;
  idle = new IdleTimer({
    timeoutMs: seconds * 1000,
    warnMs: Math.min(60_000, seconds * 500),
    onWarn: (ms) => {
      warning?.remove();
      warning = h('div', { class: 'idle-warning', role: 'alertdialog', 'aria-live': 'assertive',
        'data-testid': 'idle-warning' },
      h('p', {}, `For your security you will be signed out in ${Math.ceil(ms / 1000)} seconds without activity.`),
      h('button', { type: 'button', onclick: () => idle?.activity() }, 'Stay signed in'));
      document.body.append(warning);
    },
    onActive: () => { warning?.remove(); warning = null; },
    onTimeout: () => {
      warning?.remove();
      warning = null;
      const minutes = Math.max(1, Math.round(seconds / 60));
      void signOutNow(`You were signed out after ${seconds < 60 ? `${seconds} seconds` : `${minutes} minutes`} without activity.`)
        .then(onSignedOut);
    },
  });
  let lastWrite = 0;
  const bump = () => {
    const now = Date.now();
    idle?.activity(now);
    if (now - lastWrite > 5000) {
      lastWrite = now;
      try { localStorage.setItem(ACTIVITY_KEY, String(now)); } catch { /* ignore */ }
    }
  };
  for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart', 'scroll']) {
    window.addEventListener(type, bump, { passive: true, capture: true });
  }
  window.addEventListener('storage', (e) => {
    if (e.key === ACTIVITY_KEY && e.newValue) idle?.activity(Number(e.newValue));
  });
  document.addEventListener('visibilitychange', () => idle?.check());
}

export function stopIdle(): void {
  idle?.stop();
  idle = null;
  warning?.remove();
  warning = null;
}

/** Seconds since the current ID token's sign-in (auth_time). */
export async function signInAge(): Promise<number> {
  const user = currentUser();
  if (!user) return Infinity;
  const result = await user.getIdTokenResult();
  return Date.now() / 1000 - Number(result.claims.auth_time ?? 0);
}

/** Ask for the password again and re-authenticate. Resolves true when done. */
export function reauthenticate(why: string): Promise<boolean> {
  const user = currentUser();
  if (!user?.email) return Promise.resolve(false);
  return modal<boolean>('Confirm it is you', (close) => {
    const password = h('input', { type: 'password', autocomplete: 'current-password', required: true,
      'data-testid': 'reauth-password' });
    const error = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', {}, h('p', {}, why), field('Password', password), error,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'reauth-go' }, 'Confirm')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      try {
        // The user's tokens are replaced by the re-authentication's (fresh auth_time).
        await reauthenticateWithCredential(user, EmailAuthProvider.credential(user.email!, password.value));
        close(true);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        error.textContent = /invalid-credential|wrong-password|invalid-password/.test(code)
          ? 'That password is not correct.' : `Could not confirm your identity (${code || (err as Error).message}).`;
      }
    });
    return [form];
  }).then((ok) => {
    if (ok) toast('Identity confirmed.', 'success');
    return ok === true;
  });
}

/** Make sure the sign-in is recent enough for a verified request (default 4 minutes). */
export async function ensureRecentSignIn(why: string, maxAgeSeconds = 240): Promise<boolean> {
  if ((await signInAge()) <= maxAgeSeconds) return true;
  return reauthenticate(why);
}
