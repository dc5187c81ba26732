// The account page: name and time zone; changing the password; deleting
// the account.

import { api, deleteAccount, updateUser } from '../api.js';
import { announce, field, form, h, select } from '../dom.js';
import { navigate } from '../main.js';

export async function me(view) {
  const { data: user } = await api('GET', '/api/v1/me');
  const name = h('input', { name: 'name', required: true, maxlength: 100, value: user.name, autocomplete: 'name' });
  let zones = [];
  try { zones = Intl.supportedValuesOf('timeZone'); } catch { zones = []; }
  if (!zones.includes(user.time_zone)) zones = [user.time_zone, ...zones];
  if (!zones.includes('UTC')) zones = ['UTC', ...zones];
  const zone = select({ name: 'time_zone' }, zones.map((z) => [z, z.replaceAll('_', ' ')]), user.time_zone);
  view.append(h('h1', null, 'Your account'),
    h('p', { class: 'muted' }, `Signed in as ${user.email}`),
    form({ 'aria-label': 'Account' }, [field('Name', name), field('Time zone', zone, 'Daily summaries and due dates follow it.'),
      h('button', { type: 'submit', class: 'primary' }, 'Save')], async () => {
      const { data } = await api('PATCH', '/api/v1/me', { body: { name: name.value, time_zone: zone.value } });
      updateUser(data);
      announce('Saved');
      status.textContent = 'Saved.';
    }));
  const status = h('p', { role: 'status', class: 'muted' });
  view.append(status);

  const current = h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  const fresh = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, maxlength: 1024 });
  const changed = h('p', { role: 'status', class: 'muted' });
  view.append(h('h2', null, 'Password'),
    form({ 'aria-label': 'Change password' }, [field('Current password', current),
      field('New password', fresh, 'At least 10 characters. Your other sessions are signed out; this one stays.'),
      h('button', { type: 'submit', class: 'primary' }, 'Change password')], async () => {
      changed.textContent = '';
      await api('POST', '/api/v1/me/password', { body: { current_password: current.value, new_password: fresh.value } });
      current.value = '';
      fresh.value = '';
      announce('Password changed');
      changed.textContent = 'Password changed. Other sessions were signed out.';
    }), changed);

  const confirmPassword = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  view.append(h('h2', null, 'Delete account'),
    h('p', { class: 'muted' }, 'Your account and the organizations only you belong to are deleted. '
      + 'What you did in shared organizations stays, shown as by a deleted user. '
      + 'If you are the last owner of an organization with other members, make someone else owner first.'),
    form({ 'aria-label': 'Delete account' }, [field('Password', confirmPassword, 'To confirm, your current password.'),
      h('button', { type: 'submit', class: 'danger' }, 'Delete my account')], async () => {
      await deleteAccount(confirmPassword.value);
      navigate('/login', { replace: true });
    }));
}
