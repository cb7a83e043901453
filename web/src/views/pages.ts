import policyText from 'virtual:privacy-policy';
import { policyBlocks } from '../policy';
import type { RouteContext } from '../router';
import { h } from '../ui';

const EMAIL = /([\w.+-]+@[\w-]+\.[\w.-]+)/;

function linkify(text: string): (Node | string)[] {
  return text.split(EMAIL).map((part, i) => (i % 2 === 1
    ? h('a', { href: `mailto:${part}` }, part) : part.includes('Processors & Subprocessors')
      ? h('span', {}, ...part.split('Processors & Subprocessors').flatMap((t, j) => j === 0 ? [t]
        : [h('a', { href: '/processors', 'data-link': true }, 'Processors & Subprocessors'), t])) : part));
}

export function renderPolicy(ctx: RouteContext): void {
  const article = h('article', { class: 'prose' });
  let titled = false;
  for (const b of policyBlocks(policyText)) {
    if (b.kind === 'title') { article.append(h('h1', {}, b.text)); titled = true; }
    else if (b.kind === 'heading') article.append(h('h2', {}, b.text));
    else article.append(h('p', {}, ...linkify(b.text)));
  }
  if (!titled) article.prepend(h('h1', {}, 'Privacy Policy'));
  article.append(h('p', { class: 'hint' }, 'Cookie and tracking preferences: use "Cookie preferences" in the footer, or clear the "pacs.tracking-consent" value in your browser\'s localStorage.'));
  ctx.outlet.append(article);
}

interface Processor { name: string; entity: string; purpose: string; data: string; location: string;
  privacy: string; dpa: string }

export const PROCESSORS: Processor[] = [
  { name: 'Firebase Authentication', entity: 'Google LLC / Google Ireland Ltd', purpose: 'Sign-in, sessions',
    data: 'Email, password hash, sign-in times, IP address', location: 'EU / US',
    privacy: 'https://firebase.google.com/support/privacy', dpa: 'https://cloud.google.com/terms/data-processing-addendum' },
  { name: 'Cloud Firestore', entity: 'Google Cloud', purpose: 'Study index, upload results, shares, access history, requests',
    data: 'Extracted DICOM header fields (may include PHI), account id', location: 'europe-west1',
    privacy: 'https://cloud.google.com/privacy', dpa: 'https://cloud.google.com/terms/data-processing-addendum' },
  { name: 'Cloud Storage', entity: 'Google Cloud', purpose: 'Uploaded DICOM files, previews, exports',
    data: 'DICOM images (PHI)', location: 'europe-west1',
    privacy: 'https://cloud.google.com/privacy', dpa: 'https://cloud.google.com/terms/data-processing-addendum' },
  { name: 'Cloud Functions, Pub/Sub, Cloud Scheduler, Eventarc', entity: 'Google Cloud', purpose: 'Processing uploads, links and privacy requests',
    data: 'The data above while it is processed; logs with ids only', location: 'europe-west1',
    privacy: 'https://cloud.google.com/privacy', dpa: 'https://cloud.google.com/terms/data-processing-addendum' },
  { name: 'Firebase Hosting', entity: 'Google LLC / Google Ireland Ltd', purpose: 'Delivering this website',
    data: 'IP address, browser type, request times (server logs)', location: 'Global CDN',
    privacy: 'https://firebase.google.com/support/privacy', dpa: 'https://cloud.google.com/terms/data-processing-addendum' },
];

export function renderProcessors(ctx: RouteContext): void {
  ctx.outlet.append(h('h1', {}, 'Processors & Subprocessors'),
    h('p', {}, 'These providers process personal data on our behalf. Usage analytics, when you allow them, are counted by our own service: no third-party analytics or advertising provider receives data.'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('caption', { class: 'sr-only' }, 'Processors'),
      h('thead', {}, h('tr', {}, ...['Processor', 'Entity', 'Purpose', 'Data', 'Location', 'Documentation']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...PROCESSORS.map((p) => h('tr', {},
        h('th', { scope: 'row' }, p.name), h('td', {}, p.entity), h('td', {}, p.purpose), h('td', {}, p.data),
        h('td', {}, p.location), h('td', {}, h('a', { href: p.privacy, rel: 'noreferrer', target: '_blank' }, 'Privacy'),
          ' · ', h('a', { href: p.dpa, rel: 'noreferrer', target: '_blank' }, 'DPA'))))))));
}

export function renderNotFound(ctx: RouteContext): void {
  ctx.outlet.append(h('h1', {}, 'Page not found'),
    h('p', {}, 'This page does not exist. ', h('a', { href: '/', 'data-link': true }, 'Go to the start page'), '.'));
}
