// Sign-up, login, resetting a forgotten password, and accepting an invite
// from its emailed link.

import { ApiError, api, confirmPasswordReset, login as apiLogin, requestPasswordReset, session, signup as apiSignup } from '../api.js';
import { field, form, h } from '../dom.js';
import { navigate, orgs, safeNext } from '../main.js';

function card(title, ...children) {
  return h('div', { class: 'auth-card' }, h('p', { class: 'brand-big' }, 'orgboard'), h('h1', null, title), children);
}

const withNext = (path, next) => (next ? `${path}?next=${encodeURIComponent(next)}` : path);

export async function login(view, { query }) {
  const next = safeNext(query.get('next'));
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true, maxlength: 254 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  view.append(card('Log in',
    invitedNote(next),
    form({ 'aria-label': 'Log in' }, [field('Email', email), field('Password', password),
      h('button', { type: 'submit', class: 'primary wide' }, 'Log in')], async () => {
      await apiLogin(email.value.trim(), password.value);
      await orgs(true);
      navigate(next || '/', { replace: true });
    }),
    h('p', null, h('a', { href: '/reset-password' }, 'Forgot your password?')),
    h('p', null, 'New here? ', h('a', { href: withNext('/signup', next) }, 'Sign up'))));
  email.focus();
}

/**
 * `/reset-password`: without a token, asks for the link by email; with the
 * token of the emailed link (`?token=…`), sets the new password.
 */
export async function reset(view, { query }) {
  const token = query.get('token') || '';
  if (!token) {
    const email = h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true, maxlength: 254 });
    const sent = h('p', { role: 'status' });
    view.append(card('Reset your password',
      h('p', { class: 'muted' }, 'Enter the email of your account: we send a link to choose a new password.'),
      form({ 'aria-label': 'Reset your password' }, [field('Email', email),
        h('button', { type: 'submit', class: 'primary wide' }, 'Send reset link')], async () => {
        sent.textContent = '';
        await requestPasswordReset(email.value.trim());
        sent.textContent = 'If an account has this email, a link is on its way. It works once, for one hour.';
      }), sent,
      h('p', null, h('a', { href: '/login' }, 'Back to log in'))));
    email.focus();
    return;
  }
  const password = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, maxlength: 1024 });
  const done = h('p', { role: 'status' });
  const f = form({ 'aria-label': 'Choose a new password' }, [
    field('New password', password, 'At least 10 characters. Every session of your account is signed out.'),
    h('button', { type: 'submit', class: 'primary wide' }, 'Set password')], async () => {
    await confirmPasswordReset(token, password.value);
    password.value = '';
    f.hidden = true;
    done.textContent = 'Your password is set. ';
    done.append(h('a', { href: '/login' }, 'Log in with it'));
  });
  // The token leaves the address bar (and the history) once read.
  history.replaceState(null, '', '/reset-password');
  view.append(card('Choose a new password', f, done,
    h('p', null, h('a', { href: '/reset-password' }, 'Ask for a new link'))));
  password.focus();
}

export async function signup(view, { query }) {
  const next = safeNext(query.get('next'));
  const name = h('input', { name: 'name', autocomplete: 'name', required: true, maxlength: 100 });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, maxlength: 1024 });
  view.append(card('Create your account',
    invitedNote(next),
    form({ 'aria-label': 'Sign up' }, [field('Name', name), field('Email', email),
      field('Password', password, 'At least 10 characters.'),
      h('button', { type: 'submit', class: 'primary wide' }, 'Sign up')], async () => {
      await apiSignup(name.value, email.value.trim(), password.value);
      await orgs(true);
      navigate(next || '/', { replace: true });
    }),
    h('p', null, 'Already have an account? ', h('a', { href: withNext('/login', next) }, 'Log in'))));
  name.focus();
}

function invitedNote(next) {
  return next && next.startsWith('/invites/accept')
    ? h('p', { class: 'note' }, 'You were invited to an organization: log in or sign up, and you will join it.')
    : null;
}

export async function accept(view, { query, here }) {
  const token = query.get('token') || '';
  if (!token) {
    view.append(card('Invitation', h('p', { role: 'alert' }, 'This link has no invitation token. Open the link from the email again.')));
    return;
  }
  if (!session.user) {
    view.append(card('Join an organization',
      h('p', null, 'You were invited to an organization on orgboard. Log in or sign up to join it.'),
      h('div', { class: 'actions' },
        h('a', { class: 'button primary', href: withNext('/signup', here) }, 'Sign up'),
        h('a', { class: 'button', href: withNext('/login', here) }, 'Log in'))));
    return;
  }
  const status = h('p', { role: 'status' }, 'Joining…');
  view.append(card('Join an organization', status));
  try {
    const { data: org } = await api('POST', '/api/v1/invites/accept', { body: { token } });
    await orgs(true);
    navigate(`/o/${org.slug}`, { replace: true });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    status.setAttribute('role', 'alert');
    status.textContent = `${err.message} `;
    status.append(h('a', { href: '/' }, 'Go to your boards'));
  }
}

