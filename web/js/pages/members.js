// Members and invites: invite with a role (and copy the accept link), revoke,
// change roles, remove, leave. Controls follow the permission table; the
// server stays the authority.

import { all, api, session } from '../api.js';
import { announce, confirmDialog, field, form, h, replace, select, when } from '../dom.js';
import { navigate, reloadOrgs } from '../main.js';

const ROLES = [['owner', 'Owner'], ['admin', 'Admin'], ['member', 'Member'], ['viewer', 'Viewer']];

export async function members(view, { org }) {
  const base = `/api/v1/orgs/${org.id}`;
  const me = session.user.id;
  const admin = org.role === 'owner' || org.role === 'admin';
  const grantable = ROLES.filter(([r]) => org.role === 'owner' || r !== 'owner');
  let people = await all(`${base}/members`);
  let invites = admin ? await all(`${base}/invites`) : [];
  const owners = () => people.filter((m) => m.role === 'owner').length;

  const table = h('table', { class: 'table' });
  const inviteList = h('ul', { class: 'invites' });
  const linkBox = h('div', { class: 'accept-link', hidden: true });

  const may = (m) => m.user_id !== me && admin && (org.role === 'owner' || m.role !== 'owner');

  function draw() {
    replace(table,
      h('caption', { class: 'sr-only' }, 'Members'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Email'),
        h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, 'Joined'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', null, people.map((m) => h('tr', { dataset: { userId: m.user_id } },
        h('td', null, m.name, m.user_id === me ? h('span', { class: 'muted' }, ' (you)') : null),
        h('td', null, m.email),
        h('td', null, may(m)
          ? select({ 'aria-label': `Role of ${m.name}`, onchange: (e) => changeRole(m, e.target) }, grantable, m.role)
          : ROLES.find(([r]) => r === m.role)[1]),
        h('td', null, when(m.joined_at)),
        h('td', null, m.user_id === me
          ? h('button', { type: 'button', class: 'ghost small danger', onclick: leave }, 'Leave organization')
          : may(m) ? h('button', { type: 'button', class: 'ghost small danger', 'aria-label': `Remove ${m.name}`, onclick: () => remove(m) }, 'Remove') : null)))));
    const pending = invites.filter((i) => i.status === 'pending');
    replace(inviteList, pending.length ? pending.map((i) => h('li', { dataset: { inviteId: i.id } },
      h('span', null, i.email), h('span', { class: 'badge' }, i.role), h('span', { class: 'muted' }, `expires ${when(i.expires_at)}`),
      h('button', { type: 'button', class: 'ghost small danger', 'aria-label': `Revoke invite for ${i.email}`, onclick: () => revoke(i) }, 'Revoke')))
      : h('li', { class: 'muted' }, 'No pending invites.'));
  }

  async function changeRole(m, sel) {
    try {
      const { data } = await api('PATCH', `${base}/members/${m.user_id}`, { body: { role: sel.value } });
      Object.assign(m, data);
      announce(`${m.name} is now ${sel.value}`);
    } catch (err) {
      sel.value = m.role;
      status.textContent = err.message;
      status.hidden = false;
    }
    draw();
  }

  async function remove(m) {
    if (!(await confirmDialog(`Remove ${m.name} from ${org.name}?`, 'Remove member'))) return;
    await api('DELETE', `${base}/members/${m.user_id}`);
    people = people.filter((x) => x !== m);
    draw();
    announce(`${m.name} removed`);
  }

  async function leave() {
    if (org.role === 'owner' && owners() === 1) {
      status.textContent = 'You are the last owner: make someone else an owner first, or delete the organization in Settings.';
      status.hidden = false;
      return;
    }
    if (!(await confirmDialog(`Leave ${org.name}? You will lose access to its boards.`, 'Leave organization'))) return;
    await api('DELETE', `${base}/members/${me}`);
    await reloadOrgs();
    navigate('/');
  }

  async function revoke(i) {
    await api('DELETE', `${base}/invites/${i.id}`);
    i.status = 'revoked';
    draw();
    announce(`Invite for ${i.email} revoked`);
  }

  const status = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const email = h('input', { name: 'email', type: 'email', required: true, maxlength: 254, autocomplete: 'off' });
  const role = select({ name: 'role' }, grantable, 'member');
  const inviteForm = admin ? form({ class: 'inline-form', 'aria-label': 'Invite someone' },
    [field('Email', email), field('Role', role), h('button', { type: 'submit', class: 'primary' }, 'Invite')], async () => {
      const { data } = await api('POST', `${base}/invites`, { body: { email: email.value.trim(), role: role.value }, create: true });
      invites = [data, ...invites.filter((i) => i.id !== data.id)];
      const link = `${location.origin}/invites/accept?token=${encodeURIComponent(data.token)}`;
      const out = h('input', { id: 'accept-link', name: 'accept_link', readonly: true, value: link });
      const copied = h('span', { role: 'status', class: 'muted' });
      replace(linkBox, h('p', null, `Invite sent to ${data.email}. The email carries this link; you can also pass it on yourself (shown once):`),
        field('Accept link', out),
        h('button', { type: 'button', onclick: async () => {
          try { await navigator.clipboard.writeText(link); copied.textContent = 'Copied.'; } catch { out.select(); copied.textContent = 'Select and copy the link.'; }
        } }, 'Copy link'), copied);
      linkBox.hidden = false;
      email.value = '';
      draw();
      announce(`Invite sent to ${data.email}`);
    }) : null;

  view.append(h('div', { class: 'page-head' }, h('h1', null, `Members of ${org.name}`)), status,
    inviteForm, linkBox,
    h('div', { class: 'table-wrap' }, table),
    admin ? h('section', null, h('h2', null, 'Pending invites'), inviteList) : null);
  draw();
}
