// Deleting what a page shows (a topic, a group). Offered only when the
// broker says the caller could now: `deletion` in the page's GET answer
// (`[listeners] http_mutations` on, and the ACL); otherwise the section
// says why not. Confirmed by typing the name, sent as a DELETE, and then
// the list, which no longer has it, says what was deleted.

import { apiDelete, describeError, el, fill } from './common.js';

const $ = (id) => document.getElementById(id);

const state = { name: '', allowed: false, blocked: null, busy: false };

/** Whether a deletion is under way or done: the page stops refreshing. */
export function deleting() {
  return state.busy;
}

function update() {
  const typed = $('delete-confirm').value === state.name;
  $('delete-submit').disabled = state.busy || !state.allowed || state.blocked !== null || !typed;
}

/**
 * The section as the broker's `deletion` (`{allowed, why_not}`) says, at
 * each refresh. `blocked`: why the broker would refuse now though it
 * allows it (a group's members), which keeps the button off.
 */
export function offerDeletion(deletion, blocked = null) {
  if (!deletion || state.busy) return;
  state.allowed = deletion.allowed === true;
  state.blocked = state.allowed ? blocked : null;
  const why = state.allowed ? blocked : deletion.why_not;
  $('delete-section').hidden = false;
  $('delete-form').hidden = !state.allowed;
  $('delete-off').hidden = !why;
  $('delete-off').textContent = why || '';
  update();
}

/**
 * Wires the form: `name` is what must be typed, `path` the API path the
 * DELETE goes to, `list` the page to go to after, told what went.
 */
export function startDeletion(name, path, list) {
  state.name = name;
  $('delete-confirm').addEventListener('input', update);
  $('delete-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    update();
    if ($('delete-submit').disabled) return;
    state.busy = true;
    update();
    $('delete-confirm').disabled = true;
    fill('delete-result', 'Deleting…');
    try {
      await apiDelete(path);
      location.assign(`${list}?deleted=${encodeURIComponent(name)}`);
    } catch (err) {
      state.busy = false;
      $('delete-confirm').disabled = false;
      update();
      fill('delete-result', el('span', { id: 'delete-error', class: 'error' }, describeError(err)));
    }
  });
}
