import { createUserWithEmailAndPassword, signInWithEmailAndPassword } from 'firebase/auth';
import { getBackend } from '../firebase';
import { createProfile } from '../privacy-api';
import { describeError, ApiError } from '../api';
import { flags, takeSignOutReason } from '../session';
import type { RouteContext } from '../router';
import { field, h } from '../ui';

const AUTH_ERRORS: Record<string, string> = {
  'auth/invalid-credential': 'The email or password is not correct.',
  'auth/wrong-password': 'The email or password is not correct.',
  'auth/user-not-found': 'The email or password is not correct.',
  'auth/invalid-email': 'That email address does not look right.',
  'auth/email-already-in-use': 'An account with this email already exists. Sign in instead.',
  'auth/weak-password': 'Choose a longer password (at least 8 characters).',
  'auth/too-many-requests': 'Too many attempts. Wait a moment and try again.',
  'auth/network-request-failed': 'The service could not be reached. Check your connection.',
  'auth/user-disabled': 'This account is disabled.',
};

export function authMessage(err: unknown): string {
  const code = (err as { code?: string })?.code;
  return (code && AUTH_ERRORS[code]) || describeError(err);
}

function safeNext(query: URLSearchParams): string {
  const next = query.get('next') ?? '/studies';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/studies';
}

export function renderSignIn(ctx: RouteContext, go: (href: string) => void): void {
  const reason = takeSignOutReason();
  const email = h('input', { type: 'email', autocomplete: 'username', required: true, name: 'email' });
  const password = h('input', { type: 'password', autocomplete: 'current-password', required: true,
    name: 'password' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    reason ? h('p', { class: 'notice', role: 'status', 'data-testid': 'signout-reason' }, reason) : null,
    field('Email', email), field('Password', password), error, submit,
    h('p', {}, 'New here? ', h('a', { href: `/signup?next=${encodeURIComponent(safeNext(ctx.query))}`, 'data-link': true }, 'Create an account')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await signInWithEmailAndPassword(getBackend().auth, email.value.trim(), password.value);
      go(safeNext(ctx.query));
    } catch (err) {
      error.textContent = authMessage(err);
    } finally {
      submit.disabled = false;
    }
  });
  ctx.outlet.append(form);
}

export function renderSignUp(ctx: RouteContext, go: (href: string) => void): void {
  const name = h('input', { type: 'text', autocomplete: 'name', name: 'name', maxlength: 100 });
  const email = h('input', { type: 'email', autocomplete: 'username', required: true, name: 'email' });
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true,
    minlength: 8, name: 'password' });
  const adult = h('input', { type: 'checkbox', required: true, id: 'adult', name: 'adult' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create account');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signup-title' },
    h('h1', { id: 'signup-title' }, 'Create an account'),
    field('Name (optional)', name), field('Email', email),
    field('Password', password, 'At least 8 characters.'),
    h('div', { class: 'check' }, adult,
      h('label', { for: 'adult' }, 'I confirm that I am 18 years of age or older.')),
    h('p', { class: 'hint' }, 'By creating an account you agree to the processing described in our ',
      h('a', { href: '/privacy-policy', 'data-link': true }, 'privacy policy'),
      '. Uploaded DICOM files may contain health information: make sure you may upload them.'),
    error, submit,
    h('p', {}, 'Already registered? ', h('a', { href: '/signin', 'data-link': true }, 'Sign in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!adult.checked) {
      error.textContent = 'You must be 18 or older to use this service.';
      adult.focus();
      return;
    }
    if (password.value.length < 8) {
      error.textContent = 'Choose a longer password (at least 8 characters).';
      password.focus();
      return;
    }
    submit.disabled = true;
    flags.signingUp = true;
    try {
      await createUserWithEmailAndPassword(getBackend().auth, email.value.trim(), password.value);
      try {
        await createProfile({ adult: true, ...(name.value.trim() ? { display_name: name.value.trim() } : {}) });
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'not_implemented')) throw err;
      }
      go(safeNext(new URLSearchParams('next=/upload')));
    } catch (err) {
      error.textContent = authMessage(err);
    } finally {
      flags.signingUp = false;
      submit.disabled = false;
    }
  });
  ctx.outlet.append(form);
}
