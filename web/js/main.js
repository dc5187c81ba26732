// The application shell: session start, the header (organization switcher,
// "New organization", account, log out), client-side routing over the page
// paths of SPEC §10, and the page life cycle.

import { ApiError, all, api, logout, maybeSignedIn, onSession, onSessionLost, refresh, session } from './api.js';
import { announce, dialog, field, form, h, replace, select } from './dom.js';

const main = document.getElementById('main');
const top = document.getElementById('top');

/** Shared between pages: the caller's organizations. */
export const app = { orgs: null };

let cleanup = null;
let renderSeq = 0;

/** Goes to an application path (pushState), or replaces the current entry. */
export function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render(true);
}

/** The caller's organizations, loaded once and refreshed on demand. */
export async function orgs(reload = false) {
  if (!app.orgs || reload) app.orgs = await all('/api/v1/orgs');
  return app.orgs;
}

/** The organization named by a slug or id in a path, reloading once if unknown. */
async function findOrg(key) {
  const match = (list) => list.find((o) => o.slug === key || o.id === key);
  return match(await orgs()) || match(await orgs(true)) || null;
}

const PUBLIC = new Set(['/login', '/signup', '/reset-password']);

/** Renders the page of the current URL. */
async function render(moved) {
  const seq = ++renderSeq;
  document.body.setAttribute('aria-busy', 'true');
  main.removeAttribute('data-page');
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const query = new URLSearchParams(location.search);
  const here = location.pathname + location.search;
  const ctx = { query, navigate, here };
  try {
    let page;
    let name;
    let parts = path.split('/').slice(1).map(decodeURIComponent);
    if (path === '/login' || path === '/signup') {
      if (session.user) return navigate(safeNext(query.get('next')) || '/', { replace: true });
      page = await import('./pages/auth.js');
      name = parts[0];
    } else if (path === '/reset-password') {
      page = await import('./pages/auth.js');
      name = 'reset';
    } else if (path === '/invites/accept') {
      page = await import('./pages/auth.js');
      name = 'accept';
    } else if (!session.user) {
      return navigate(path === '/' ? '/login' : `/login?next=${encodeURIComponent(here)}`, { replace: true });
    } else if (path === '/') {
      const list = await orgs();
      return navigate(list.length ? `/o/${list[0].slug}` : '/me', { replace: true });
    } else if (path === '/me') {
      page = await import('./pages/me.js');
      name = 'me';
    } else if (parts[0] === 'o' && parts.length >= 2) {
      const org = await findOrg(parts[1]);
      if (seq !== renderSeq) return;
      if (!org) return notFound('No such organization, or you are not a member of it.');
      ctx.org = org;
      const [, , section, id] = parts;
      if (parts.length === 2) { page = await import('./pages/boards.js'); name = 'boards'; }
      else if (section === 'b' && id && parts.length === 4) { page = await import('./pages/board.js'); name = 'board'; ctx.boardId = id; }
      else if (section === 'members' && parts.length === 3) { page = await import('./pages/members.js'); name = 'members'; }
      else if (section === 'audit' && parts.length === 3) { page = await import('./pages/audit.js'); name = 'audit'; }
      else if (section === 'settings' && parts.length === 3) { page = await import('./pages/settings.js'); name = 'settings'; }
      else return notFound();
    } else {
      return notFound();
    }
    if (session.user && !app.orgs) await orgs();
    if (seq !== renderSeq) return;
    renderHeader(ctx.org, name);
    const view = h('div', { class: `page page-${name}` });
    replace(main, view);
    const fn = page[name] || page.render;
    cleanup = (await fn(view, ctx)) || null;
    if (seq !== renderSeq) { if (cleanup) cleanup(); cleanup = null; return; }
    main.dataset.page = name;
    // For the browser benchmark (bench/web): when each page was ready.
    performance.mark(`orgboard:${name}`);
    if (moved) {
      const heading = main.querySelector('h1');
      (heading || main).setAttribute('tabindex', '-1');
      (heading || main).focus({ preventScroll: true });
    }
  } catch (err) {
    if (seq !== renderSeq) return;
    if (err instanceof ApiError && err.status === 401) return;
    if (err instanceof ApiError && err.status === 404) return notFound('This page does not exist, or it was deleted.');
    replace(main, h('div', { class: 'page narrow' }, h('h1', null, 'Something went wrong'),
      h('p', { role: 'alert' }, err.message || String(err)),
      h('button', { type: 'button', onclick: () => render(false) }, 'Try again')));
    main.dataset.page = 'error';
  } finally {
    if (seq === renderSeq) document.body.setAttribute('aria-busy', 'false');
  }
}

function notFound(text = 'There is no page at this address.') {
  renderHeader(null, 'notfound');
  replace(main, h('div', { class: 'page narrow' }, h('h1', null, 'Page not found'), h('p', null, text),
    h('p', null, h('a', { href: '/' }, 'Go to your boards'))));
  main.dataset.page = 'notfound';
  document.body.setAttribute('aria-busy', 'false');
}

/** A `next=` parameter only when it is a path of this site. */
export function safeNext(next) {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : null;
}

const canAdmin = (org) => org && (org.role === 'owner' || org.role === 'admin');

function renderHeader(org, pageName) {
  if (!session.user) { top.hidden = true; top.replaceChildren(); return; }
  top.hidden = false;
  const list = app.orgs || [];
  const switcher = select({ id: 'org-switch', name: 'org', onchange: (e) => navigate(`/o/${e.target.value}`) },
    [...(org ? [] : [['', 'Choose…']]), ...list.map((o) => [o.slug, o.name])], org?.slug || '');
  const navLink = (href, text, current) => h('a', { href, 'aria-current': current ? 'page' : null }, text);
  replace(top,
    h('a', { class: 'brand', href: '/', 'aria-label': 'orgboard home' }, 'orgboard'),
    h('div', { class: 'org-switch' }, h('label', { for: 'org-switch', class: 'sr-only' }, 'Organization'), switcher),
    h('button', { type: 'button', class: 'ghost', onclick: newOrgDialog }, 'New organization'),
    org ? h('nav', { 'aria-label': 'Organization' },
      navLink(`/o/${org.slug}`, 'Boards', pageName === 'boards' || pageName === 'board'),
      navLink(`/o/${org.slug}/members`, 'Members', pageName === 'members'),
      canAdmin(org) ? navLink(`/o/${org.slug}/audit`, 'Audit log', pageName === 'audit') : null,
      navLink(`/o/${org.slug}/settings`, 'Settings', pageName === 'settings')) : h('span', { class: 'spacer' }),
    h('div', { class: 'account' },
      navLink('/me', 'Account', pageName === 'me'),
      h('button', { type: 'button', class: 'ghost', onclick: async () => { await logout(); app.orgs = null; navigate('/login'); } }, 'Log out')));
}

function newOrgDialog() {
  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
  const d = dialog({ 'aria-labelledby': 'new-org-title', class: 'small' },
    h('h2', { id: 'new-org-title' }, 'New organization'),
    form({}, [field('Organization name', name),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create organization'),
        h('button', { type: 'button', onclick: () => d.close() }, 'Cancel'))],
    async () => {
      const { data } = await api('POST', '/api/v1/orgs', { body: { name: name.value }, create: true });
      await orgs(true);
      d.close();
      announce(`Organization ${data.name} created`);
      navigate(`/o/${data.slug}`);
    }));
  name.focus();
}

/** Reloads the organization list and the page (after a role change, leaving…). */
export async function reloadOrgs() { await orgs(true); }

// Same-origin links navigate inside the application.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/docs')) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search + url.hash);
});
window.addEventListener('popstate', () => render(true));

onSessionLost(() => {
  const here = location.pathname + location.search;
  if (!PUBLIC.has(location.pathname) && location.pathname !== '/invites/accept') {
    app.orgs = null;
    navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
  }
});
onSession((user) => { if (!user) app.orgs = null; });

(async () => {
  if (maybeSignedIn()) await refresh();
  render(false);
})();
