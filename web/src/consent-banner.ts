// The consent banner: shown on first visit (no stored choice) and from the footer's
// "Cookie preferences". Accept and reject are equally prominent; nothing is preselected.
import { readConsent, setConsent } from './consent';
import { h } from './ui';

let banner: HTMLElement | null = null;

export function showConsentBanner(onDecided?: (analytics: boolean) => void): void {
  banner?.remove();
  const current = readConsent(window.localStorage);
  const decide = (analytics: boolean) => {
    setConsent(window.localStorage, analytics);
    banner?.remove();
    banner = null;
    onDecided?.(analytics);
  };
  banner = h('section', { class: 'consent-banner', role: 'region', 'aria-labelledby': 'consent-title',
    'data-testid': 'consent-banner' },
  h('h2', { id: 'consent-title' }, 'Your privacy choices'),
  h('p', {}, 'With your consent we count page views and actions (never images or health data) to improve the service. ',
    'No advertising trackers are used. You can change this any time under "Cookie preferences" at the bottom of the page, or by clearing "pacs.tracking-consent" in your browser\'s localStorage. ',
    h('a', { href: '/privacy-policy', 'data-link': true }, 'Privacy policy'), '.'),
  current ? h('p', { class: 'hint' }, `Current choice: analytics ${current.analytics ? 'allowed' : 'not allowed'}.`) : null,
  h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'primary', 'data-testid': 'consent-accept', onclick: () => decide(true) },
      'Accept analytics'),
    h('button', { type: 'button', class: 'primary', 'data-testid': 'consent-reject', onclick: () => decide(false) },
      'Reject analytics')));
  document.body.append(banner);
}
