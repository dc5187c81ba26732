// The boards of an organization: open, create, rename, archive, restore.

import { all, api } from '../api.js';
import { announce, confirmDialog, dialog, field, form, h, replace } from '../dom.js';
import { navigate } from '../main.js';

export const canManageBoards = (org) => org.role === 'owner' || org.role === 'admin';

export async function boards(view, { org }) {
  const [live, old] = await Promise.all([all(`/api/v1/orgs/${org.id}/boards`), all(`/api/v1/orgs/${org.id}/boards?archived=true`)]);
  const items = [...live, ...old].sort((a, b) => a.name.localeCompare(b.name));
  const manage = canManageBoards(org);
  const active = h('ul', { id: 'boards', class: 'board-grid' });
  const archived = h('ul', { id: 'archived-boards', class: 'board-grid' });
  const archivedBox = h('details', { class: 'archived' }, h('summary', null, 'Archived boards'), archived);

  const draw = () => {
    const row = (b) => h('li', { class: 'board-tile', dataset: { boardId: b.id } },
      h('a', { href: `/o/${org.slug}/b/${b.id}` }, b.name),
      b.description ? h('p', { class: 'muted' }, b.description) : null,
      manage ? h('div', { class: 'tile-actions' },
        h('button', { type: 'button', class: 'ghost small', 'aria-label': `Rename board ${b.name}`, onclick: () => rename(b) }, 'Rename'),
        b.archived
          ? h('button', { type: 'button', class: 'ghost small', 'aria-label': `Restore board ${b.name}`, onclick: () => setArchived(b, false) }, 'Restore')
          : h('button', { type: 'button', class: 'ghost small', 'aria-label': `Archive board ${b.name}`, onclick: () => setArchived(b, true) }, 'Archive'),
        org.role === 'owner' || org.role === 'admin'
          ? h('button', { type: 'button', class: 'ghost small danger', 'aria-label': `Delete board ${b.name}`, onclick: () => remove(b) }, 'Delete') : null) : null);
    replace(active, items.filter((b) => !b.archived).map(row));
    if (!active.children.length) active.append(h('li', { class: 'empty' }, manage ? 'No boards yet: create the first one.' : 'No boards yet.'));
    replace(archived, items.filter((b) => b.archived).map(row));
    archivedBox.hidden = !archived.children.length;
  };

  async function rename(b) {
    const name = h('input', { name: 'name', value: b.name, required: true, maxlength: 100 });
    const description = h('textarea', { name: 'description', rows: 3, maxlength: 10000 });
    description.value = b.description || '';
    const d = dialog({ 'aria-labelledby': 'rb-title', class: 'small' }, h('h2', { id: 'rb-title' }, 'Edit board'),
      form({}, [field('Board name', name), field('Description', description),
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save'),
          h('button', { type: 'button', onclick: () => d.close() }, 'Cancel'))], async () => {
        const { data } = await api('PATCH', `/api/v1/orgs/${org.id}/boards/${b.id}`, { body: { name: name.value, description: description.value } });
        Object.assign(b, data);
        d.close();
        draw();
        announce(`Board renamed to ${data.name}`);
      }));
    name.select();
  }

  async function setArchived(b, archivedNow) {
    const { data } = await api('PATCH', `/api/v1/orgs/${org.id}/boards/${b.id}`, { body: { archived: archivedNow } });
    Object.assign(b, data);
    draw();
    announce(`Board ${b.name} ${archivedNow ? 'archived' : 'restored'}`);
  }

  async function remove(b) {
    if (!(await confirmDialog(`Delete the board "${b.name}" with all its lists and cards? This cannot be undone.`, 'Delete board'))) return;
    await api('DELETE', `/api/v1/orgs/${org.id}/boards/${b.id}`);
    items.splice(items.indexOf(b), 1);
    draw();
    announce(`Board ${b.name} deleted`);
  }

  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
  view.append(
    h('div', { class: 'page-head' }, h('h1', null, org.name), h('p', { class: 'muted' }, `You are ${org.role}`)),
    manage ? form({ class: 'inline-form', 'aria-label': 'New board' }, [field('Board name', name),
      h('button', { type: 'submit', class: 'primary' }, 'Create board')], async () => {
      const { data } = await api('POST', `/api/v1/orgs/${org.id}/boards`, { body: { name: name.value }, create: true });
      navigate(`/o/${org.slug}/b/${data.id}`);
    }) : null,
    h('h2', { class: 'sr-only' }, 'Boards'),
    active, archivedBox);
  draw();
}
