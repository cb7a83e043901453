// Small DOM helpers: no framework, no innerHTML with data (text nodes only).

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {},
  ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

let live: HTMLElement | undefined;

/** Say something to screen-reader users (polite live region). */
export function announce(message: string): void {
  if (!live) {
    live = h('div', { class: 'sr-only', 'aria-live': 'polite', role: 'status', id: 'announcer' });
    document.body.append(live);
  }
  live.textContent = '';
  window.setTimeout(() => { if (live) live.textContent = message; }, 50);
}

export function toast(message: string, kind: 'info' | 'error' | 'success' = 'info'): void {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'assertive' });
    document.body.append(box);
  }
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    message);
  box.append(item);
  window.setTimeout(() => item.remove(), 6000);
}

let idCounter = 0;
export function uid(prefix = 'id'): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string): HTMLElement {
  if (!input.id) input.id = uid('f');
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

/** A modal dialog (native <dialog>: focus trap and Escape for free). Resolves with the
 *  value passed to close(), or undefined when dismissed. */
export function modal<T>(title: string, build: (close: (v?: T) => void) => Node[]): Promise<T | undefined> {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dialog = h('dialog', { class: 'modal', 'aria-labelledby': titleId });
    let done = false;
    const close = (value?: T) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(undefined); });
    append(dialog, [h('h2', { id: titleId }, title), ...build(close)]);
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector<HTMLElement>('input, button, select, textarea');
    first?.focus();
  });
}

/** Ask the user to type `word` to confirm a destructive action. */
export function typedConfirm(title: string, explanation: string, word: string,
  action: string): Promise<boolean> {
  return modal<boolean>(title, (close) => {
    const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false',
      'data-testid': 'confirm-input' });
    const go = h('button', { type: 'submit', class: 'danger', disabled: true,
      'data-testid': 'confirm-go' }, action);
    input.addEventListener('input', () => { go.disabled = input.value.trim() !== word; });
    const form = h('form', {}, h('p', {}, explanation),
      field(`Type ${word} to confirm`, input),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'), go));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (input.value.trim() === word) close(true);
    });
    return [form];
  }).then((v) => v === true);
}

export function spinner(label = 'Loading…'): HTMLElement {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spin', 'aria-hidden': 'true' }), label);
}

export function emptyState(title: string, text: string, action?: HTMLElement): HTMLElement {
  return h('div', { class: 'empty', role: 'status' }, h('h2', {}, title), h('p', {}, text), action ?? null);
}

export function errorState(text: string, retry?: () => void): HTMLElement {
  return h('div', { class: 'error-state', role: 'alert' }, h('p', {}, text),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}
