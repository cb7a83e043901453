import processorRows from 'virtual:processors';
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

// One list with the deploy plan: the services it enables that hold personal data
// (infra/processors.json, read at build time).
export const PROCESSORS = processorRows;

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
