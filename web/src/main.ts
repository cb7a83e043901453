import './styles.css';
import { onAuthStateChanged, type User } from 'firebase/auth';
import { afterConsentSync, track } from './analytics';
import { loadConfig } from './config';
import { onConsentChange, readConsent } from './consent';
import { showConsentBanner } from './consent-banner';
import { initBackend } from './firebase';
import { forgetManifest } from './manifests';
import { getConsent, setServerConsent, getProfile, createProfile } from './privacy-api';
import { Router, type Route } from './router';
import { currentUser, flags, signOutNow, startIdle, stopIdle } from './session';
import { h, modal, toast } from './ui';
import { renderSignIn, renderSignUp } from './views/auth';
import { renderNotFound, renderPolicy, renderProcessors } from './views/pages';
import { renderDeleted, renderPrivacy } from './views/privacy';
import { renderStudies } from './views/studies';
import { renderStudy } from './views/study';
import { renderUpload, resetUploads } from './views/upload';

async function boot(): Promise<void> {
  const app = document.getElementById('app')!;
  let config;
  try {
    config = await loadConfig();
  } catch (err) {
    app.append(h('main', { id: 'main', class: 'container' }, h('h1', {}, 'Radiology PACS'),
      h('p', { role: 'alert' }, `The service is not available right now (${(err as Error).message}). Please try again later.`)));
    return;
  }
  const { auth } = await initBackend(config);

  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' });
  const userBox = h('div', { class: 'user' });
  const main = h('main', { id: 'main', class: 'container', tabindex: -1 });
  const footer = h('footer', { class: 'footer' },
    h('a', { href: '/privacy-policy', 'data-link': true }, 'Privacy policy'),
    h('a', { href: '/processors', 'data-link': true }, 'Processors'),
    // Generated at build time (vite-licences.ts): the bundled packages and their licences.
    h('a', { href: '/third-party-licences.txt' }, 'Open-source licences'),
    h('button', { type: 'button', class: 'link', 'data-testid': 'cookie-preferences',
      onclick: () => showConsentBanner() }, 'Cookie preferences'));
  app.append(h('header', { class: 'topbar' },
    h('a', { href: '/', class: 'brand', 'data-link': true }, 'Radiology PACS'), nav, userBox), main, footer);

  let user: User | null = null;
  let authKnown = false;
  const router = new Router(routes(), main, (route, path) => {
    if (route.auth && !user) return `/signin?next=${encodeURIComponent(path)}`;
    if ((route.pattern === '/signin' || route.pattern === '/signup') && user) return '/studies';
    if (route.pattern === '/') return user ? '/studies' : '/signin';
    return null;
  }, renderNotFound);
  const go = (href: string) => router.go(href);

  function routes(): Route[] {
    return [
      { pattern: '/', title: 'Start', render: () => {} },
      { pattern: '/signin', title: 'Sign in', render: (c) => renderSignIn(c, go) },
      { pattern: '/signup', title: 'Create an account', render: (c) => renderSignUp(c, go) },
      { pattern: '/upload', title: 'Upload', auth: true, render: renderUpload },
      { pattern: '/studies', title: 'Studies', auth: true,
        render: (c) => renderStudies(c, (href, state) => router.go(href, false, state)) },
      { pattern: '/studies/:id', title: 'Study', auth: true, render: (c) => renderStudy(c, go) },
      // The viewer (dwv, its decoders) loads only when a study is opened.
      { pattern: '/viewer/:id', title: 'Viewer', auth: true,
        render: async (c) => (await import('./views/viewer')).renderOwnerViewer(c) },
      { pattern: '/view', title: 'Shared study',
        render: async (c) => (await import('./views/viewer')).renderShareViewer(c) },
      { pattern: '/privacy', title: 'Privacy centre', auth: true, render: (c) => renderPrivacy(c, go) },
      { pattern: '/deleted', title: 'Account deletion', render: renderDeleted },
      { pattern: '/privacy-policy', title: 'Privacy policy', render: renderPolicy },
      { pattern: '/processors', title: 'Processors', render: renderProcessors },
    ];
  }

  const renderChrome = () => {
    nav.replaceChildren(...(user ? [
      h('a', { href: '/studies', 'data-link': true }, 'Studies'),
      h('a', { href: '/upload', 'data-link': true }, 'Upload'),
      h('a', { href: '/privacy', 'data-link': true }, 'Privacy'),
    ] : []));
    userBox.replaceChildren(...(user ? [
      h('span', { class: 'email', 'data-testid': 'user-email' }, user.email ?? ''),
      h('button', { type: 'button', 'data-testid': 'sign-out', onclick: async () => {
        await signOutNow();
        go('/signin');
      } }, 'Sign out'),
    ] : [h('a', { href: '/signin', 'data-link': true }, 'Sign in')]));
  };

  /** Mirror this browser's choice to the consent ledger. The ledger's choice is never
   * copied into the browser: a missing local value means "not given on this browser" (the
   * policy's way to withdraw is clearing it), so the banner stays and nothing is tracked. */
  async function syncConsent(): Promise<void> {
    if (!currentUser()) return;
    try {
      const local = readConsent(window.localStorage);
      if (!local) return;
      const server = await getConsent();
      const serverValue = server.analytics === 'granted' && !server.needs_renewal ? true
        : server.analytics === 'withdrawn' ? false : null;
      if (serverValue !== local.analytics) await setServerConsent(local.analytics);
    } catch {
      /* no profile yet, or offline: the local choice stands and is synced next time */
    }
  }
  onConsentChange(() => afterConsentSync(syncConsent()));

  /** An account made elsewhere (or whose profile step failed) confirms 18+ first. */
  async function ensureProfile(): Promise<void> {
    if (flags.signingUp) return;
    try {
      const { profile } = await getProfile();
      if (profile) return;
    } catch {
      return;
    }
    const ok = await modal<boolean>('One more step', (close) => {
      const adult = h('input', { type: 'checkbox', id: 'adult-late', required: true });
      const form = h('form', {}, h('p', {}, 'This service is for adults only.'),
        h('div', { class: 'check' }, adult, h('label', { for: 'adult-late' }, 'I confirm that I am 18 years of age or older.')),
        h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => close(false) }, 'Sign out'),
          h('button', { type: 'submit', class: 'primary' }, 'Continue')));
      form.addEventListener('submit', (e) => { e.preventDefault(); if (adult.checked) close(true); });
      return [form];
    });
    if (ok) {
      await createProfile({ adult: true }).catch((err) => toast(String(err.message), 'error'));
    } else {
      await signOutNow();
      go('/signin');
    }
  }

  onAuthStateChanged(auth, (u) => {
    const changed = (u?.uid ?? null) !== (user?.uid ?? null);
    user = u;
    renderChrome();
    if (u) {
      startIdle(() => go('/signin'));
      afterConsentSync(syncConsent());
      void ensureProfile();
    } else {
      stopIdle();
      resetUploads();
      forgetManifest();
    }
    if (!authKnown || changed) {
      authKnown = true;
      void router.render();
    }
  });

  if (!readConsent(window.localStorage)) showConsentBanner();
  let lastPath = '';
  const pageView = () => {
    if (location.pathname !== lastPath) {
      lastPath = location.pathname;
      track('page_view');
    }
  };
  window.addEventListener('popstate', pageView);
  const push = history.pushState.bind(history);
  history.pushState = (...args: Parameters<typeof history.pushState>) => { push(...args); pageView(); };
  onConsentChange((c) => { if (c?.analytics) { lastPath = ''; pageView(); } });
  pageView();
  // Lets scripted checks (and the e2e run) know the banner decision is in place.
  document.documentElement.dataset.ready = 'true';
}

void boot();
