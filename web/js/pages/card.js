// The card dialog: every field of a task, its comments, delete. A save
// carries the version the dialog was opened with (If-Match); a 412 shows
// the newer version and lets the person choose — nothing is overwritten
// silently.

import { ApiError, all, api, session } from '../api.js';
import { announce, confirmDialog, dialog, field, form, h, replace, select, when } from '../dom.js';
import { priorityName, statusName } from './board.js';

const FIELDS = ['title', 'description', 'status', 'priority', 'due_date', 'assignee_ids', 'label_ids'];

export async function openCard({ base, task, members, labels, can, onSaved, onDeleted, onClosed }) {
  const editable = can.editCard(task);
  const title = h('input', { name: 'title', required: true, maxlength: 500, disabled: !editable });
  const description = h('textarea', { name: 'description', rows: 6, maxlength: 20000, disabled: !editable });
  const status = select({ name: 'status', disabled: !editable }, Object.entries(statusName), task.status);
  const priority = select({ name: 'priority', disabled: !editable }, Object.entries(priorityName), task.priority);
  const due = h('input', { name: 'due_date', type: 'date', disabled: !editable });
  const assignees = h('fieldset', { class: 'checks' }, h('legend', null, 'Assignees'),
    [...members.values()].map((m) => check('assignee', m.user_id, m.name, editable)));
  const labelBox = h('fieldset', { class: 'checks' }, h('legend', null, 'Labels'),
    labels.size ? [...labels.values()].map((l) => check('label', l.id, l.name, editable)) : h('p', { class: 'muted' }, 'No labels in this organization.'));
  const conflict = h('div', { class: 'conflict', role: 'alert', hidden: true });
  let base0 = task; // the version the edits are based on

  const fill = (t) => {
    base0 = t;
    title.value = t.title;
    description.value = t.description || '';
    status.value = t.status;
    priority.value = t.priority;
    due.value = t.due_date ? t.due_date.slice(0, 10) : '';
    for (const c of assignees.querySelectorAll('input')) c.checked = t.assignee_ids.includes(c.value);
    for (const c of labelBox.querySelectorAll('input')) c.checked = t.label_ids.includes(c.value);
  };
  const current = () => ({
    title: title.value,
    description: description.value,
    status: status.value,
    priority: priority.value,
    due_date: due.value ? `${due.value}T00:00:00Z` : null,
    assignee_ids: [...assignees.querySelectorAll('input:checked')].map((c) => c.value),
    label_ids: [...labelBox.querySelectorAll('input:checked')].map((c) => c.value),
  });
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const norm = (t, k) => {
    if (k === 'due_date') return t.due_date ? `${t.due_date.slice(0, 10)}T00:00:00Z` : null;
    if (k === 'assignee_ids' || k === 'label_ids') return [...t[k]].sort();
    if (k === 'description') return t.description || '';
    return t[k];
  };
  /** The fields the person changed relative to `from`. */
  const changes = (from) => {
    const now = current();
    const out = {};
    for (const k of FIELDS) {
      const mine = k.endsWith('_ids') ? [...now[k]].sort() : now[k];
      if (!same(mine, norm(from, k))) out[k] = now[k];
    }
    return out;
  };

  async function save(version, body) {
    if (!Object.keys(body).length) { d.close(); return; }
    try {
      const { data } = await api('PATCH', `${base}/tasks/${task.id}`, { body, ifMatch: version });
      onSaved(data);
      announce(`Card ${data.title} saved`);
      d.close();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 412) throw err;
      const { data: theirs } = await api('GET', `${base}/tasks/${task.id}`);
      onSaved(theirs);
      showConflict(theirs, body);
    }
  }

  function showConflict(theirs, mine) {
    const rows = FIELDS.filter((k) => !same(norm(theirs, k), norm(base0, k))).map((k) =>
      h('li', null, h('strong', null, `${label(k)}: `), show(theirs, k)));
    replace(conflict,
      h('p', null, 'This card was changed by someone else since you opened it. Their version:'),
      h('ul', null, rows.length ? rows : h('li', null, h('strong', null, 'Title: '), theirs.title)),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => { fill(theirs); conflict.hidden = true; title.focus(); } }, 'Use their version'),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          conflict.hidden = true;
          try { await save(theirs.version, mine); } catch (err) { conflict.hidden = false; conflict.append(h('p', null, err.message)); }
        } }, 'Save mine anyway')));
    conflict.hidden = false;
    conflict.querySelector('button')?.focus();
  }

  const label = (k) => ({ title: 'Title', description: 'Description', status: 'Status', priority: 'Priority', due_date: 'Due date', assignee_ids: 'Assignees', label_ids: 'Labels' })[k];
  const show = (t, k) => {
    if (k === 'status') return statusName[t.status];
    if (k === 'priority') return priorityName[t.priority];
    if (k === 'due_date') return t.due_date ? t.due_date.slice(0, 10) : 'none';
    if (k === 'assignee_ids') return t.assignee_ids.map((id) => members.get(id)?.name || 'someone').join(', ') || 'nobody';
    if (k === 'label_ids') return t.label_ids.map((id) => labels.get(id)?.name || 'a label').join(', ') || 'none';
    return t[k] || '(empty)';
  };

  const comments = h('ul', { id: 'comments', class: 'comments', 'aria-live': 'polite' });
  const commentInput = h('textarea', { name: 'body', rows: 3, maxlength: 20000 });
  const editForm = form({ class: 'card-form' }, [
    field('Title', title), field('Description', description),
    h('div', { class: 'row' }, field('Status', status), field('Priority', priority), field('Due date', due)),
    h('div', { class: 'row' }, assignees, labelBox),
    conflict,
    h('div', { class: 'actions' },
      editable ? h('button', { type: 'submit', class: 'primary' }, 'Save') : null,
      h('button', { type: 'button', onclick: () => d.close() }, 'Close'),
      can.deleteCard(task) ? h('button', { type: 'button', class: 'ghost danger', onclick: remove }, 'Delete card') : null),
  ], async () => { conflict.hidden = true; await save(base0.version, changes(base0)); });

  const d = dialog({ id: 'card-dialog', class: 'card-dialog', 'aria-labelledby': 'card-dialog-title' },
    h('h2', { id: 'card-dialog-title', class: 'sr-only' }, `Card: ${task.title}`),
    editForm,
    h('section', { class: 'comments-box', 'aria-labelledby': 'comments-title' },
      h('h3', { id: 'comments-title' }, 'Comments'), comments,
      can.comment ? form({ class: 'add-comment' }, [field('Comment', commentInput),
        h('button', { type: 'submit' }, 'Add comment')], async () => {
        const { data } = await api('POST', `${base}/tasks/${task.id}/comments`, { body: { body: commentInput.value }, create: true });
        commentInput.value = '';
        list.push(data);
        drawComments();
        announce('Comment added');
      }) : null));
  d.addEventListener('close', onClosed);
  fill(task);
  title.focus();

  // The full task (with its description) and its comments.
  let list = [];
  try {
    const [{ data: full }, items] = await Promise.all([api('GET', `${base}/tasks/${task.id}`), all(`${base}/tasks/${task.id}/comments`)]);
    if (full.version !== task.version) onSaved(full);
    if (!Object.keys(changes(base0)).length || full.version === base0.version) fill(full);
    list = items;
    drawComments();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) { onDeleted(task.id); replace(conflict, h('p', null, 'This card was deleted.')); conflict.hidden = false; }
  }

  function drawComments() {
    replace(comments, list.length ? list.map(commentEl) : h('li', { class: 'muted' }, 'No comments yet.'));
  }

  function commentEl(c) {
    const author = members.get(c.author_id)?.name || 'Former member';
    const mine = c.author_id === session.user?.id;
    const li = h('li', { class: 'comment', dataset: { commentId: c.id } },
      h('p', { class: 'comment-meta' }, h('strong', null, author), ' · ', when(c.created_at), c.edited_at ? ' (edited)' : ''),
      h('p', { class: 'comment-body' }, c.body),
      h('div', { class: 'actions' },
        mine && can.comment ? h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Edit comment', onclick: () => edit(c, li) }, 'Edit') : null,
        (mine && can.comment) || can.admin ? h('button', { type: 'button', class: 'ghost small danger', 'aria-label': 'Delete comment', onclick: () => del(c) }, 'Delete') : null));
    return li;
  }

  function edit(c, li) {
    const text = h('textarea', { name: 'body', rows: 3, maxlength: 20000 });
    text.value = c.body;
    li.replaceWith(form({ class: 'edit-comment' }, [field('Edit comment', text),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary small' }, 'Save comment'),
        h('button', { type: 'button', class: 'ghost small', onclick: drawComments }, 'Cancel'))], async () => {
      const { data } = await api('PATCH', `${base}/comments/${c.id}`, { body: { body: text.value } });
      Object.assign(c, data);
      drawComments();
      announce('Comment saved');
    }));
    text.focus();
  }

  async function del(c) {
    if (!(await confirmDialog('Delete this comment?', 'Delete comment'))) return;
    await api('DELETE', `${base}/comments/${c.id}`);
    list = list.filter((x) => x !== c);
    drawComments();
    announce('Comment deleted');
  }

  async function remove() {
    if (!(await confirmDialog(`Delete the card "${task.title}"?`, 'Delete card'))) return;
    await api('DELETE', `${base}/tasks/${task.id}`);
    onDeleted(task.id);
    announce('Card deleted');
    d.close();
  }

  return d;
}

function check(name, value, text, enabled) {
  return h('label', { class: 'check' }, h('input', { type: 'checkbox', name, value, disabled: !enabled }), text);
}

