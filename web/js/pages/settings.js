// Organization settings: rename and slug (owners, admins), delete (owners).

import { api } from '../api.js';
import { announce, field, form, h } from '../dom.js';
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
