// Organization settings: rename and slug (owners, admins), delete (owners).

import { all, api } from '../api.js';
import { announce, confirmDialog, field, form, h, replace } from '../dom.js';
import { navigate, reloadOrgs } from '../main.js';

export async function settings(view, { org }) {
  const base = `/api/v1/orgs/${org.id}`;
  const { data: current } = await api('GET', base);
  const admin = org.role === 'owner' || org.role === 'admin';
  const name = h('input', { name: 'name', required: true, maxlength: 100, value: current.name, disabled: !admin });
  const slug = h('input', { name: 'slug', required: true, maxlength: 63, value: current.slug, disabled: !admin, autocomplete: 'off', spellcheck: 'false' });
  view.append(h('h1', null, 'Settings'),
    form({ 'aria-label': 'Organization' }, [
      field('Name', name), field('Slug', slug, 'Lowercase letters, digits and dashes; part of every page address of the organization.'),
      admin ? h('button', { type: 'submit', class: 'primary' }, 'Save') : h('p', { class: 'muted' }, 'Only owners and admins can change these.'),
    ], async () => {
      const body = {};
      if (name.value !== current.name) body.name = name.value;
      if (slug.value !== current.slug) body.slug = slug.value;
      if (!Object.keys(body).length) return;
      const { data } = await api('PATCH', base, { body });
      Object.assign(current, data);
      await reloadOrgs();
      announce('Settings saved');
      navigate(`/o/${data.slug}/settings`, { replace: true });
    }));
  view.append(await labelsSection(org, base));
  if (org.role === 'owner' && !current.is_personal) {
    const confirm = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false' });
    view.append(h('section', { class: 'danger-zone' }, h('h2', null, 'Delete organization'),
      h('p', null, 'Deletes the organization, its boards, lists, cards and comments for every member.'),
      form({ 'aria-label': 'Delete organization' }, [field(`Type ${current.slug} to confirm`, confirm),
        h('button', { type: 'submit', class: 'danger' }, 'Delete organization')], async () => {
        if (confirm.value !== current.slug) throw new Error(`Type ${current.slug} exactly to confirm.`);
        await api('DELETE', base);
        await reloadOrgs();
        navigate('/');
      })));
  } else if (org.role === 'owner') {
    view.append(h('p', { class: 'muted' }, 'This is your personal organization; it goes with your account.'));
  }
}

/** Labels of the organization: members and above add and edit them, owners
 * and admins delete them (as lists, SPEC §4). */
async function labelsSection(org, base) {
  const writer = org.role !== 'viewer';
  const admin = org.role === 'owner' || org.role === 'admin';
  let labels = await all(`${base}/labels`);
  const list = h('ul', { class: 'label-list' });
  const draw = () => replace(list, labels.length ? labels.map((l) => {
    const name = h('input', { name: 'name', value: l.name, maxlength: 50, required: true, disabled: !writer, 'aria-label': `Name of label ${l.name}` });
    const color = h('input', { name: 'color', type: 'color', value: l.color, disabled: !writer, 'aria-label': `Colour of label ${l.name}` });
    return h('li', null, form({ class: 'inline-form' }, [color, name,
      writer ? h('button', { type: 'submit', class: 'small' }, 'Save label') : null,
      admin ? h('button', { type: 'button', class: 'ghost small danger', 'aria-label': `Delete label ${l.name}`, onclick: async () => {
        if (!(await confirmDialog(`Delete the label "${l.name}"? It is taken off every card.`, 'Delete label'))) return;
        await api('DELETE', `${base}/labels/${l.id}`);
        labels = labels.filter((x) => x !== l);
        draw();
        announce(`Label ${l.name} deleted`);
      } }, 'Delete') : null], async () => {
      const { data } = await api('PATCH', `${base}/labels/${l.id}`, { body: { name: name.value, color: color.value } });
      Object.assign(l, data);
      announce(`Label ${data.name} saved`);
    }));
  }) : h('li', { class: 'muted' }, 'No labels yet.'));
  draw();
  const name = h('input', { name: 'name', maxlength: 50, required: true, autocomplete: 'off' });
  const color = h('input', { name: 'color', type: 'color', value: '#2f6fd6' });
  return h('section', { class: 'labels-box', 'aria-labelledby': 'labels-title' }, h('h2', { id: 'labels-title' }, 'Labels'), list,
    writer ? form({ class: 'inline-form', 'aria-label': 'New label' }, [field('Label name', name), field('Colour', color),
      h('button', { type: 'submit' }, 'Add label')], async () => {
      const { data } = await api('POST', `${base}/labels`, { body: { name: name.value, color: color.value }, create: true });
      labels.push(data);
      name.value = '';
      draw();
      announce(`Label ${data.name} added`);
    }) : null);
}
