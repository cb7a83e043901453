// A small history router: path patterns with :params, links marked data-link.

export interface Route {
  pattern: string;
  auth?: boolean;
  title: string;
  render: (ctx: RouteContext) => Promise<void> | void;
}

export interface RouteContext {
  params: Record<string, string>;
  query: URLSearchParams;
  outlet: HTMLElement;
  /** Aborted when the user navigates away: listeners and timers hang off it. */
  signal: AbortSignal;
}

export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i += 1) {
    if (p[i].startsWith(':')) {
      try {
        params[p[i].slice(1)] = decodeURIComponent(s[i]);
      } catch {
        return null;
      }
    } else if (p[i] !== s[i]) {
      return null;
    }
  }
  return params;
}

type Guard = (route: Route, path: string) => string | null;

export class Router {
  private current: AbortController | null = null;

  constructor(private routes: Route[], private outlet: HTMLElement, private guard: Guard,
    private notFound: (ctx: RouteContext) => void) {
    window.addEventListener('popstate', () => this.render());
    document.addEventListener('click', (e) => {
      const a = (e.target as Element | null)?.closest?.('a[data-link]') as HTMLAnchorElement | null;
      if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      this.go(a.getAttribute('href') ?? '/');
    });
  }

  go(href: string, replace = false, state: unknown = null): void {
    if (replace) history.replaceState(state, '', href);
    else history.pushState(state, '', href);
    void this.render();
  }

  async render(): Promise<void> {
    this.current?.abort();
    const controller = new AbortController();
    this.current = controller;
    const path = location.pathname;
    const query = new URLSearchParams(location.search);
    for (const route of this.routes) {
      const params = matchPath(route.pattern, path);
      if (!params) continue;
      const redirect = this.guard(route, path + location.search);
      if (redirect) {
        this.go(redirect, true);
        return;
      }
      document.title = `${route.title} · Radiology PACS`;
      this.outlet.replaceChildren();
      try {
        await route.render({ params, query, outlet: this.outlet, signal: controller.signal });
      } finally {
        if (!controller.signal.aborted) {
          const heading = this.outlet.querySelector('h1');
          if (heading) {
            heading.setAttribute('tabindex', '-1');
            heading.focus({ preventScroll: true });
          }
        }
      }
      return;
    }
    document.title = 'Not found · Radiology PACS';
    this.outlet.replaceChildren();
    this.notFound({ params: {}, query, outlet: this.outlet, signal: controller.signal });
  }
}
