// The audit log (owners and admins): newest first, filters in the URL,
// paged by cursor ("Load more").

import { all, get } from '../api.js';
import { field, h, select, when } from '../dom.js';

const ACTIONS = ['org.created', 'org.updated', 'org.deleted', 'member.joined', 'member.left', 'member.removed', 'member.role_changed',
  'invite.created', 'invite.revoked', 'invite.accepted', 'board.created', 'board.updated', 'board.archived', 'board.restored', 'board.deleted',
  'list.created', 'list.updated', 'list.moved', 'list.deleted', 'task.created', 'task.updated', 'task.moved', 'task.deleted',
  'comment.created', 'comment.updated', 'comment.deleted', 'label.created', 'label.updated', 'label.deleted'];
const TYPES = ['org', 'member', 'invite', 'board', 'list', 'task', 'comment', 'label'];

export async function audit(view, { org, query }) {
  if (org.role !== 'owner' && org.role !== 'admin') {
    view.append(h('h1', null, 'Audit log'), h('p', { role: 'alert' }, 'Only owners and admins can read the audit log.'));
    return;
  }
  const base = `/api/v1/orgs/${org.id}`;
  const people = await all(`${base}/members`);
  const names = new Map(people.map((m) => [m.user_id, m.name]));
  const f = {
    actor_id: select({ name: 'actor_id' }, [['', 'Anyone'], ...people.map((m) => [m.user_id, m.name])], query.get('actor_id') || ''),
    action: select({ name: 'action' }, [['', 'Any action'], ...ACTIONS.map((a) => [a, a])], query.get('action') || ''),
    entity_type: select({ name: 'entity_type' }, [['', 'Anything'], ...TYPES.map((t) => [t, t])], query.get('entity_type') || ''),
    since: h('input', { name: 'since', type: 'date', value: query.get('since') || '' }),
    until: h('input', { name: 'until', type: 'date', value: query.get('until') || '' }),
  };
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const status = h('p', { role: 'status', class: 'muted' });
  let cursor = null;

  const params = () => {
    const p = new URLSearchParams();
    for (const [k, c] of Object.entries(f)) {
      if (!c.value) continue;
      if (k === 'since') p.set(k, `${c.value}T00:00:00Z`);
      else if (k === 'until') p.set(k, `${c.value}T23:59:59Z`);
      else p.set(k, c.value);
    }
    return p;
  };
  async function page(first) {
    const p = params();
    p.set('limit', '50');
    if (!first && cursor) p.set('cursor', cursor);
    const data = await get(`${base}/audit-log?${p}`);
    if (first) rows.replaceChildren();
    for (const e of data.items) rows.append(row(e));
    cursor = data.next_cursor;
    more.hidden = !cursor;
    status.textContent = rows.children.length ? `${rows.children.length} entries shown` : 'No entries match.';
  }
  const row = (e) => h('tr', null,
    h('td', null, h('time', { datetime: e.created_at }, when(e.created_at))),
    h('td', null, e.actor_id ? names.get(e.actor_id) || 'Former member' : 'system'),
    h('td', null, h('code', null, e.action)),
    h('td', null, e.entity_type),
    h('td', { class: 'payload' }, summary(e.payload)));
  more.addEventListener('click', () => page(false));
  const apply = () => {
    const q = new URLSearchParams();
    for (const [k, c] of Object.entries(f)) if (c.value) q.set(k, c.value);
    history.replaceState(null, '', location.pathname + (q.toString() ? `?${q}` : ''));
    page(true);
  };
  for (const c of Object.values(f)) c.addEventListener('change', apply);
  const labels = { actor_id: 'Actor', action: 'Action', entity_type: 'Entity', since: 'From', until: 'Until' };
  view.append(h('h1', null, 'Audit log'),
    h('form', { class: 'filters', 'aria-label': 'Filter the audit log', onsubmit: (e) => e.preventDefault() },
      Object.entries(f).map(([k, c]) => field(labels[k], c))),
    status,
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['When', 'Who', 'Action', 'Entity', 'Details'].map((t) => h('th', { scope: 'col' }, t)))), rows)),
    more);
  await page(true);
}

/** A short, text-only summary of an audit payload. */
function summary(payload) {
  if (!payload || typeof payload !== 'object') return '';
  const parts = [];
  for (const [k, v] of Object.entries(payload)) {
    if (k.endsWith('_id') || k.endsWith('_ids')) continue;
    const text = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    parts.push(`${k}: ${text.length > 80 ? `${text.slice(0, 80)}…` : text}`);
    if (parts.length >= 4) break;
  }
  return parts.join(' · ');
}

