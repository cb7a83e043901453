// The share dialog's "De-identified copy" (issue 16, data minimisation): on by default; before
// such a share is created the owner sees what the copy will leave out (POST
// /links/shares/preview, which makes no copy) and confirms. The share list marks these shares.
import { api, describeError } from '../api';
import { errorState, h } from '../ui';

/** Why an instance stays out of a de-identified copy, as the owner reads it. */
export const LEFT_OUT_TEXT: Record<string, [string, string]> = {
  burned_in_annotation: ['image marked as having burned-in annotation', 'images marked as having burned-in annotation'],
  ultrasound: ['ultrasound image', 'ultrasound images'],
  secondary_capture: ['secondary capture (screenshot or scan)', 'secondary captures (screenshots or scans)'],
  unreadable: ['image that could not be read', 'images that could not be read'],
  too_large: ['image over 64 MiB', 'images over 64 MiB'],
  object_missing: ['image no longer stored', 'images no longer stored'],
};

export interface DeidPreview {
  instances: number | null;
  copied: number;
  left_out: Record<string, number>;
  fits: boolean;
  /** The copy's bounds, given when it does not fit. */
  max_instances?: number;
  max_gib?: number;
}

/** Why no de-identified copy can be made of a study over the copy's bounds (the server's). */
export function tooLargeText(preview: DeidPreview): string {
  const bounds = preview.max_instances && preview.max_gib
    ? ` (at most ${preview.max_instances.toLocaleString('en')} images and ${preview.max_gib} GiB)` : '';
  return `This study is too large for a de-identified copy${bounds}. `
    + 'Share fewer images, or untick "De-identified copy" to share the full study.';
}

/** "2 ultrasound images", one line per reason (largest first). */
export function leftOutLines(leftOut: Record<string, number> | undefined): string[] {
  return Object.entries(leftOut ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => {
      const [one, many] = LEFT_OUT_TEXT[reason] ?? [reason, reason];
      return `${n} ${n === 1 ? one : many}`;
    });
}

/** The checkbox, on by default, and its field. */
export function deidentifiedField(disabled: boolean): { box: HTMLInputElement; field: HTMLElement } {
  const box = h('input', { type: 'checkbox', id: 'share-deidentified', name: 'deidentified',
    checked: true, disabled, 'aria-describedby': 'share-deidentified-hint' });
  const field = h('div', { class: 'field' },
    h('div', { class: 'check' }, box, h('label', { for: 'share-deidentified' }, 'De-identified copy (recommended)')),
    h('p', { class: 'hint', id: 'share-deidentified-hint' },
      'The recipient gets a copy without the patient\'s name, ID and birth date, with new UIDs and shifted dates. ',
      'Images whose pixels may show who the patient is are left out; you see which before the link is made.'));
  return { box, field };
}

/** Show what a de-identified copy of the study would leave out in `container`; resolve true
 *  when the owner confirms, false when they cancel or it cannot be made. */
export async function confirmDeidentified(studyId: string, container: HTMLElement): Promise<boolean> {
  container.replaceChildren(h('p', { class: 'loading', role: 'status' }, 'Checking what the de-identified copy can hold…'));
  let preview: DeidPreview;
  try {
    preview = await api<DeidPreview>('/links/shares/preview', { method: 'POST', body: { study_id: studyId } });
  } catch (err) {
    container.replaceChildren(errorState(describeError(err)));
    return false;
  }
  if (!preview.fits) {
    container.replaceChildren(errorState(tooLargeText(preview)));
    return false;
  }
  const lines = leftOutLines(preview.left_out);
  const total = preview.instances ?? 0;
  return new Promise((resolve) => {
    const done = (ok: boolean) => { if (!ok) container.replaceChildren(); resolve(ok); };
    const confirm = h('button', { type: 'button', class: 'primary', 'data-testid': 'deid-confirm',
      disabled: preview.copied === 0, onclick: () => done(true) }, 'Create de-identified link');
    container.replaceChildren(h('div', { class: 'notice', role: 'alert', 'data-testid': 'deid-preview',
      'data-copied': String(preview.copied), 'data-left-out': String(total - preview.copied) },
    h('p', {}, `The de-identified copy will hold ${preview.copied} of ${total} image${total === 1 ? '' : 's'}.`),
    lines.length ? h('p', {}, 'Left out, because names are often burned into their pixels:') : null,
    lines.length ? h('ul', { 'data-testid': 'deid-left-out' }, ...lines.map((l) => h('li', {}, l))) : null,
    preview.copied === 0 ? h('p', {}, 'Nothing would be left to share: untick "De-identified copy" to share the full study.') : null,
    h('p', { class: 'hint' }, 'Text in the remaining images\' pixels is not checked: look at them before you send the link.'),
    confirm, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));
    confirm.focus();
  });
}

/** The share list's mark of a de-identified share (with what its copy left out). */
export function deidentifiedBadge(share: { deidentified?: boolean; left_out?: Record<string, number>;
  copy_status?: string | null }): HTMLElement | null {
  if (!share.deidentified) return null;
  const lines = leftOutLines(share.left_out);
  const preparing = share.copy_status === 'preparing';
  return h('span', { class: 'badge', 'data-testid': 'share-deidentified', 'data-copy-status': share.copy_status ?? '',
    title: lines.length ? `Left out: ${lines.join(', ')}` : 'Nothing left out' },
  preparing ? 'De-identified (copy being prepared)' : 'De-identified');
}

/** What the owner is told when the copy of a large study is still being made. */
export function preparingNote(created: { copy_status?: string }): HTMLElement | string {
  return created.copy_status === 'preparing' ? h('p', { class: 'notice', 'data-testid': 'deid-preparing' },
    'The de-identified copy of this large study is being prepared: the link works once it is ready, '
    + 'usually within a few minutes. The share list shows when.') : '';
}

/** The recipient's note on a de-identified copy: what was removed and what was left out. */
export function deidentifiedNotice(leftOut: Record<string, number> | undefined): HTMLElement {
  const lines = leftOutLines(leftOut);
  return h('p', { class: 'notice', 'data-testid': 'deid-notice' },
    'This is a de-identified copy: the patient\'s name, ID and birth date were removed, its UIDs replaced and its dates shifted.',
    lines.length ? ` Left out by the sender's copy: ${lines.join(', ')}.` : '');
}
