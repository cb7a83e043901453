// The "API keys" section of the Privacy centre: create (the key is shown once), list, revoke.
import { ApiError, describeError } from '../api';
import { formatDate, formatDateTime } from '../format';
import { createKey, KEY_STATUS_TEXT, listKeys, revokeKey, type ApiKey, type CreatedKey } from '../keys-api';
import { ensureRecentSignIn, reauthenticate } from '../session';
import { errorState, field, h, toast } from '../ui';

const KEY_ERROR_TEXT: Record<string, string> = {
  bad_name: 'Give the key a name of 1 to 64 characters.',
  too_many_keys: 'You have 50 keys: revoke one first.',
  restricted: 'Processing of your account is restricted: no new API keys.',
};

function keyRow(k: ApiKey, reload: () => void): HTMLElement {
  const revoke = h('button', { type: 'button', class: 'small', 'data-testid': 'key-revoke',
    'aria-label': `Revoke key ${k.name}` }, 'Revoke');
  revoke.addEventListener('click', async () => {
    revoke.disabled = true;
    try {
      await revokeKey(k.key_id);
      toast(`Key "${k.name}" revoked.`, 'success');
      reload();
    } catch (err) {
      revoke.disabled = false;
      toast(describeError(err), 'error');
    }
  });
  return h('tr', { 'data-testid': 'key-row', 'data-key-id': k.key_id, 'data-status': k.status },
    h('td', {}, k.name), h('td', {}, k.scope === 'read-write' ? 'Read and write' : 'Read only'),
    h('td', {}, h('span', { class: `badge key-${k.status}` }, KEY_STATUS_TEXT[k.status] ?? k.status)),
    h('td', {}, formatDate(k.created_at)), h('td', {}, formatDate(k.expires_at)),
    h('td', {}, k.last_used_at ? formatDateTime(k.last_used_at) : 'Never'),
    h('td', {}, k.revoked || k.status === 'expired' ? '' : revoke));
}

/** The key just created, once: the user copies it now; reloading the page loses it. */
function shownOnce(created: CreatedKey): HTMLElement {
  const value = h('input', { type: 'text', readonly: true, value: created.key, 'data-testid': 'key-value',
    'aria-label': 'Your new API key', spellcheck: 'false', autocomplete: 'off' });
  const copy = h('button', { type: 'button', class: 'small' }, 'Copy');
  copy.addEventListener('click', async () => {
    value.select();
    try { await navigator.clipboard.writeText(created.key); toast('Key copied.', 'success'); }
    catch { toast('Select the key and copy it.', 'info'); }
  });
  return h('div', { class: 'notice', role: 'status', 'data-testid': 'key-created' },
    h('p', {}, `Key "${created.name}" (${created.scope}) until ${formatDate(created.expires_at)}. `,
      h('strong', {}, 'It is shown only now: store it somewhere safe.'),
      ' Send it as Authorization: Bearer <key> to /dicomweb.'), value, copy);
}

export function keysSection(): HTMLElement {
  const body = h('tbody', {});
  const note = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    try {
      const { keys, suspended } = await listKeys();
      body.replaceChildren(...(keys.length ? keys.map((k) => keyRow(k, () => void load()))
        : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No API keys.'))]));
      if (suspended) note.replaceChildren(h('p', { class: 'hint' }, 'Your keys are suspended while processing of your account is restricted; lifting the restriction restores them.'));
    } catch (err) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 7 }, errorState(describeError(err)))));
    }
  };
  const name = h('input', { type: 'text', maxlength: 64, required: true, 'data-testid': 'key-name' });
  const scope = h('select', { 'data-testid': 'key-scope' },
    h('option', { value: 'read' }, 'Read only'), h('option', { value: 'read-write' }, 'Read and write'));
  const days = h('input', { type: 'number', min: 1, max: 365, value: 90, required: true, 'data-testid': 'key-days' });
  const form = h('form', { class: 'inline-form', 'data-testid': 'key-form' },
    field('Name', name, 'What the key is for, e.g. "Orthanc peer".'), field('Access', scope),
    field('Valid for (days)', days, 'At most 365.'),
    h('button', { type: 'submit', 'data-testid': 'key-create' }, 'Create key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!(await ensureRecentSignIn('Creating an API key needs a fresh sign-in: confirm your password.'))) return;
    const request = { name: name.value.trim(), scope: scope.value as ApiKey['scope'],
      expires_in_days: Number(days.value) };
    try {
      const created = await createKey(request).catch(async (err) => {
        if (err instanceof ApiError && err.code === 'recent_sign_in_required'
          && await reauthenticate('Confirm your password to create the key.')) return createKey(request);
        throw err;
      });
      note.replaceChildren(shownOnce(created));
      name.value = '';
      void load();
    } catch (err) {
      toast((err instanceof ApiError && KEY_ERROR_TEXT[err.code]) || describeError(err), 'error');
    }
  });
  void load();
  return h('section', { 'aria-labelledby': 'p-keys' }, h('h2', { id: 'p-keys' }, 'API keys'),
    h('p', {}, 'Keys let tools that cannot sign in (an Orthanc peer, a gateway, a script) reach your studies through DICOMweb. A key is shown once, stored only as a hash, and works until it expires or you revoke it.'),
    form, note,
    h('table', { class: 'table', 'data-testid': 'keys' }, h('thead', {}, h('tr', {},
      ...['Name', 'Access', 'Status', 'Created', 'Expires', 'Last used'].map((t) => h('th', { scope: 'col' }, t)),
      h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), body));
}
