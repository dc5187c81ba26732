// The kanban board: lists as columns, cards in order, add list / add card,
// drag (pointer events: mouse, pen and touch alike) and keyboard moves, the
// filters in the URL, live changes by others, and the card dialog.
//
// Big boards: the board view carries each list's first 200 cards and a
// cursor; a list draws what it has and, scrolled to its end (a sentinel
// watched by an IntersectionObserver), asks for its next page, so a board of
// 100 000 cards opens as fast as one of a few hundred. A filter loads every
// page first (it must see every card).

import { ApiError, all, api, get, session } from '../api.js';
import { announce, confirmDialog, field, form, h, localDay, replace, select } from '../dom.js';
import { subscribe } from '../live.js';
import { navigate, reloadOrgs } from '../main.js';
import { openCard } from './card.js';

const CHUNK = 200;
const STATUS = [['todo', 'To do'], ['in_progress', 'In progress'], ['done', 'Done']];
const PRIORITY = [['low', 'Low'], ['medium', 'Medium'], ['high', 'High'], ['urgent', 'Urgent']];
export const statusName = Object.fromEntries(STATUS);
export const priorityName = Object.fromEntries(PRIORITY);

/** What the caller's role allows on this board (SPEC §4; the server decides). */
export function permissions(org) {
  const me = session.user?.id;
  const admin = org.role === 'owner' || org.role === 'admin';
  const writer = org.role !== 'viewer';
  return {
    me,
    admin,
    addList: writer,
    moveList: writer,
    renameList: writer,
    deleteList: admin,
    addCard: writer,
    comment: writer,
    editCard: (t) => admin || (writer && (t.created_by === me || t.assignee_ids.includes(me))),
    deleteCard: (t) => admin || (writer && t.created_by === me),
  };
}

const byPosition = (a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0);

/** Whether a task is overdue: due before today and not done. */
export const overdue = (t) => !!t.due_date && t.status !== 'done' && t.due_date.slice(0, 10) < localDay();

export async function board(view, ctx) {
  const { org, boardId, query } = ctx;
  const base = `/api/v1/orgs/${org.id}`;
  const can = permissions(org);
  const [viewData, memberList, labelList] = await Promise.all([
    get(`${base}/boards/${boardId}`), all(`${base}/members`), all(`${base}/labels`)]);
  const members = new Map(memberList.map((m) => [m.user_id, m]));
  const labels = new Map(labelList.map((l) => [l.id, l]));
  let boardInfo = viewData;
  /** Lists in order, each `{...list, tasks: [...], shown, el, ul}`. */
  let lists = [];
  const tasks = new Map();
  const filters = readFilters(query);
  let dragging = null;
  const queued = [];

  const title = h('h1', null, boardInfo.name);
  const note = h('p', { class: 'board-note', role: 'status', hidden: true });
  const liveDot = h('span', { class: 'live-state', title: 'Live updates' }, 'Connecting…');
  const columns = h('div', { class: 'lists', role: 'list', 'aria-label': 'Lists' });
  const filterBar = renderFilters();

  function load(data) {
    lists = (data.lists || []).map((l) => ({ ...l, tasks: (l.tasks || []).slice().sort(byPosition), shown: CHUNK }));
    tasks.clear();
    for (const l of lists) for (const t of l.tasks) tasks.set(t.id, t);
  }
  load(viewData);

  // ---- drawing -----------------------------------------------------------
  const matches = (t) => {
    const f = filters;
    if (f.assignee === 'none' ? t.assignee_ids.length : f.assignee && !t.assignee_ids.includes(f.assignee === 'me' ? can.me : f.assignee)) return false;
    if (f.label && !t.label_ids.includes(f.label)) return false;
    if (f.priority && t.priority !== f.priority) return false;
    if (f.status && t.status !== f.status) return false;
    if (f.due === 'overdue' && !overdue(t)) return false;
    if (f.due === 'none' && t.due_date) return false;
    if (f.due === 'week') {
      if (!t.due_date) return false;
      const limit = new Date(); limit.setDate(limit.getDate() + 7);
      if (t.due_date.slice(0, 10) > localDay(limit)) return false;
    }
    if (f.q && !t.title.toLowerCase().includes(f.q.toLowerCase())) return false;
    return true;
  };

  function cardEl(t) {
    const assignees = t.assignee_ids.map((id) => members.get(id)).filter(Boolean);
    const late = overdue(t);
    return h('li', {
      class: `card prio-${t.priority}${t.status === 'done' ? ' done' : ''}`,
      tabindex: 0,
      dataset: { taskId: t.id },
      'aria-roledescription': 'card',
      'aria-label': `${t.title}${late ? ', overdue' : ''}`,
    },
    t.label_ids.length ? h('ul', { class: 'labels', 'aria-label': 'Labels' }, t.label_ids.map((id) => labels.get(id)).filter(Boolean)
      .map(labelChip)) : null,
    h('span', { class: 'card-title' }, t.title),
    h('div', { class: 'card-meta' },
      h('span', { class: `badge status-${t.status}` }, statusName[t.status] || t.status),
      h('span', { class: `badge prio prio-${t.priority}` }, priorityName[t.priority] || t.priority),
      t.due_date ? h('span', { class: `badge due${late ? ' overdue' : ''}` },
        h('span', { class: 'sr-only' }, late ? 'Overdue, due ' : 'Due '), t.due_date.slice(0, 10)) : null,
      t.comment_count ? h('span', { class: 'badge comments', 'aria-label': `${t.comment_count} comments` }, `💬 ${t.comment_count}`) : null,
      assignees.length ? h('span', { class: 'avatars' }, assignees.map((m) => h('span', { class: 'avatar', title: m.name, 'aria-label': m.name }, initials(m.name)))) : null));
  }

  function drawList(l) {
    const visible = l.tasks.filter(matches);
    const focused = document.activeElement?.closest?.('.card')?.dataset.taskId;
    replace(l.ul, visible.slice(0, l.shown).map(cardEl), l.moreRow);
    l.count.textContent = `${visible.length}${l.next_cursor ? '+' : ''}`;
    l.moreRow.hidden = visible.length <= l.shown && !l.next_cursor;
    l.more.textContent = visible.length > l.shown ? `Show ${Math.min(CHUNK, visible.length - l.shown)} more` : 'Load more cards';
    if (focused) l.ul.querySelector(`[data-task-id="${focused}"]`)?.focus({ preventScroll: true });
  }

  /** The next page of a list's cards (the board view carries the first
   * `per_list`; its cursor pages the rest in board order). */
  async function loadMore(l) {
    if (!l.next_cursor || l.loading) return;
    l.loading = true;
    try {
      const q = new URLSearchParams({ list_id: l.id, sort: 'position', limit: '200', cursor: l.next_cursor });
      const page = await get(`${base}/tasks?${q}`);
      for (const t of page.items) {
        if (tasks.has(t.id) || t.list_id !== l.id) continue;
        tasks.set(t.id, t);
        l.tasks.push(t);
      }
      l.tasks.sort(byPosition);
      l.next_cursor = page.next_cursor;
      // They were asked for by scrolling to the end: draw them.
      l.shown = Math.max(l.shown, l.tasks.filter(matches).length);
    } catch (err) {
      flash(`Cannot load more cards: ${err.message}`);
    } finally {
      l.loading = false;
    }
    drawList(l);
  }

  /** Every card of every list (a filter looks at all of them). */
  async function loadAll() {
    for (const l of lists) while (l.next_cursor && !l.loading) await loadMore(l);
  }

  /** Builds a list's column once; later changes update it in place, so a
   * half-typed card title (and its focus) survives live updates. */
  function listEl(l) {
    l.ul = h('ul', { class: 'cards' });
    l.count = h('span', { class: 'count' });
    l.more = h('button', { type: 'button', class: 'ghost small more', onclick: () => {
      if (l.tasks.filter(matches).length > l.shown) { l.shown += CHUNK; drawList(l); } else loadMore(l);
    } });
    // The last row of the list: when it scrolls into view, more come.
    l.moreRow = h('li', { class: 'more-row' }, l.more);
    l.heading = h('h2', { id: `list-${l.id}` });
    l.handle = can.moveList
      ? h('button', { type: 'button', class: 'handle ghost small', title: 'Drag, or Alt+Arrow keys', onkeydown: (e) => keyMoveList(e, l) }, '⠿')
      : null;
    l.renameBtn = can.renameList ? h('button', { type: 'button', class: 'ghost small', onclick: () => renameList(l) }, 'Rename') : null;
    l.deleteBtn = can.deleteList ? h('button', { type: 'button', class: 'ghost small danger', onclick: () => deleteList(l) }, 'Delete') : null;
    l.head = h('header', { class: 'list-head' }, l.handle, l.heading, l.count, h('div', { class: 'list-actions' }, l.renameBtn, l.deleteBtn));
    const input = h('input', { name: 'title', maxlength: 500, autocomplete: 'off', placeholder: 'New card' });
    const add = can.addCard ? form({ class: 'add-card' }, [field('Card title', input),
      h('button', { type: 'submit', class: 'ghost' }, 'Add card')], async () => {
      const text = input.value;
      const { data } = await api('POST', `${base}/lists/${l.id}/tasks`, { body: { title: text }, create: true });
      input.value = '';
      upsertTask(data);
      announce(`Card ${data.title} added to ${l.name}`);
      input.focus();
    }) : null;
    l.el = h('section', { class: 'list', role: 'listitem', dataset: { listId: l.id } }, l.head, l.ul, add);
    if (l.handle) l.handle.addEventListener('pointerdown', (e) => startListDrag(e, l));
    observeMore(l);
    nameListEl(l);
    drawList(l);
    return l.el;
  }

  /** Puts the list's name everywhere its column shows or says it. */
  function nameListEl(l) {
    l.el.setAttribute('aria-label', l.name);
    l.ul.setAttribute('aria-label', `Cards in ${l.name}`);
    l.heading.textContent = l.name;
    l.handle?.setAttribute('aria-label', `Move list ${l.name}`);
    l.renameBtn?.setAttribute('aria-label', `Rename list ${l.name}`);
    l.deleteBtn?.setAttribute('aria-label', `Delete list ${l.name}`);
  }

  const observers = [];
  const observeMore = (l) => {
    const o = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting && !e.target.hidden && !dragging) l.more.click();
    }, { root: l.ul, rootMargin: '0px 0px 300px 0px' });
    o.observe(l.moreRow);
    observers.push(o);
  };

  const addListInput = h('input', { name: 'name', maxlength: 100, autocomplete: 'off', placeholder: 'New list' });
  const addList = can.addList ? h('div', { class: 'list add-list' }, form({}, [field('List name', addListInput),
    h('button', { type: 'submit', class: 'ghost' }, 'Add list')], async () => {
    const { data } = await api('POST', `${base}/boards/${boardId}/lists`, { body: { name: addListInput.value }, create: true });
    addListInput.value = '';
    upsertList(data);
    announce(`List ${data.name} added`);
    addListInput.focus();
  })) : null;

  /** Brings the columns in line with `lists`, moving only what moved. */
  function drawAll() {
    const want = lists.map((l) => { if (l.el) nameListEl(l); else listEl(l); return l.el; });
    if (addList) want.push(addList);
    if (!want.length) want.push(emptyNote);
    for (const child of [...columns.children]) if (!want.includes(child)) child.remove();
    let at = columns.firstChild;
    for (const el of want) {
      if (el === at) at = at.nextSibling;
      else columns.insertBefore(el, at);
    }
  }
  const emptyNote = h('p', { class: 'empty' }, 'This board has no lists yet.');

  // ---- local state changes -------------------------------------------------
  const listOf = (id) => lists.find((l) => l.id === id);

  /** Puts the task's current state in place (its list, by position). */
  function upsertTask(t) {
    const old = tasks.get(t.id);
    if (old && old.version > t.version) return;
    if (old) {
      const from = listOf(old.list_id);
      if (from) from.tasks.splice(from.tasks.indexOf(old), 1);
      if (from && from.id !== t.list_id) drawList(from);
    }
    const to = listOf(t.list_id);
    if (!to) { tasks.delete(t.id); return; }
    const last = to.tasks[to.tasks.length - 1];
    if (to.next_cursor && last && t.position > last.position) {
      // Beyond the cards loaded so far: it comes with the list's next page.
      tasks.delete(t.id);
      drawList(to);
      return;
    }
    tasks.set(t.id, t);
    to.tasks.push(t);
    to.tasks.sort(byPosition);
    drawList(to);
  }

  function removeTask(id) {
    const old = tasks.get(id);
    if (!old) return;
    tasks.delete(id);
    const l = listOf(old.list_id);
    if (l) { l.tasks.splice(l.tasks.indexOf(old), 1); drawList(l); }
  }

  function upsertList(data) {
    const l = listOf(data.id);
    if (l) {
      Object.assign(l, { name: data.name, position: data.position });
      lists.sort(byPosition);
      drawAll();
      return;
    }
    lists.push({ ...data, tasks: [], shown: CHUNK });
    lists.sort(byPosition);
    drawAll();
  }

  function removeList(id) {
    const l = listOf(id);
    if (!l) return;
    for (const t of l.tasks) tasks.delete(t.id);
    lists.splice(lists.indexOf(l), 1);
    drawAll();
  }

  // ---- moves ---------------------------------------------------------------
  /**
   * Moves a task to `listId`, right after `afterId` (or before `beforeId`;
   * neither: at the end). Placed at once; put back with the reason if the
   * server refuses.
   */
  async function moveTask(t, listId, { afterId = null, beforeId = null } = {}) {
    const from = listOf(t.list_id);
    const to = listOf(listId);
    if (!from || !to) return;
    const undo = { from: from.tasks.slice(), to: to.tasks.slice(), list_id: t.list_id };
    from.tasks.splice(from.tasks.indexOf(t), 1);
    let at = to.tasks.length;
    if (afterId) at = to.tasks.findIndex((x) => x.id === afterId) + 1;
    else if (beforeId) at = Math.max(0, to.tasks.findIndex((x) => x.id === beforeId));
    to.tasks.splice(at, 0, t);
    t.list_id = listId;
    drawList(from);
    if (to !== from) drawList(to);
    const body = { list_id: listId };
    if (afterId) body.after_id = afterId;
    else if (beforeId) body.before_id = beforeId;
    try {
      const { data } = await api('POST', `${base}/tasks/${t.id}/move`, { body });
      Object.assign(t, data);
      to.tasks.sort(byPosition);
      drawList(to);
      announce(`${t.title} moved to ${to.name}, position ${to.tasks.indexOf(t) + 1} of ${to.tasks.length}`);
      return true;
    } catch (err) {
      from.tasks = undo.from;
      to.tasks = from === to ? undo.from : undo.to;
      t.list_id = undo.list_id;
      drawList(from);
      if (to !== from) drawList(to);
      flash(`The card was put back: ${err.message}`);
      if (err instanceof ApiError && err.status === 404) refetch();
      return false;
    }
  }

  async function moveList(l, { afterId = null, beforeId = null }) {
    const undo = lists.slice();
    lists.splice(lists.indexOf(l), 1);
    let at = lists.length;
    if (afterId) at = lists.findIndex((x) => x.id === afterId) + 1;
    else if (beforeId) at = Math.max(0, lists.findIndex((x) => x.id === beforeId));
    lists.splice(at, 0, l);
    drawAll();
    const body = afterId ? { after_id: afterId } : beforeId ? { before_id: beforeId } : {};
    try {
      const { data } = await api('POST', `${base}/lists/${l.id}/move`, { body });
      l.position = data.position;
      lists.sort(byPosition);
      drawAll();
      announce(`List ${l.name} moved to position ${lists.indexOf(l) + 1} of ${lists.length}`);
    } catch (err) {
      lists = undo;
      drawAll();
      flash(`The list was put back: ${err.message}`);
    }
    l.el.querySelector('.handle')?.focus({ preventScroll: true });
  }

  function flash(text) {
    note.textContent = text;
    note.hidden = false;
    note.setAttribute('role', 'alert');
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { note.hidden = true; }, 8000);
  }

  // Keyboard: Alt+Up/Down within the list, Alt+Left/Right to the next list.
  columns.addEventListener('keydown', (e) => {
    const cardNode = e.target.closest?.('.card');
    if (!cardNode || e.target !== cardNode) return;
    const t = tasks.get(cardNode.dataset.taskId);
    if (!t) return;
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(t); return; }
    if (!e.altKey || !['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight'].includes(e.key)) return;
    e.preventDefault();
    if (!can.editCard(t)) { flash('You may not move this card.'); return; }
    const l = listOf(t.list_id);
    const shown = l.tasks.filter(matches);
    const i = shown.indexOf(t);
    let done;
    if (e.key === 'ArrowUp' && i > 0) done = moveTask(t, l.id, { beforeId: shown[i - 1].id });
    else if (e.key === 'ArrowDown' && i < shown.length - 1) done = moveTask(t, l.id, { afterId: shown[i + 1].id });
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      const target = lists[lists.indexOf(l) + (e.key === 'ArrowLeft' ? -1 : 1)];
      if (target) {
        target.shown = Math.max(target.shown, target.tasks.length + 1);
        done = moveTask(t, target.id);
      }
    }
    if (done) done.then(() => columns.querySelector(`.card[data-task-id="${t.id}"]`)?.focus());
  });

  function keyMoveList(e, l) {
    if (!e.altKey || (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight')) return;
    e.preventDefault();
    const i = lists.indexOf(l);
    if (e.key === 'ArrowLeft' && i > 0) moveList(l, { beforeId: lists[i - 1].id });
    if (e.key === 'ArrowRight' && i < lists.length - 1) moveList(l, { afterId: lists[i + 1].id });
  }

  // Pointer drag of cards.
  columns.addEventListener('pointerdown', (e) => {
    const cardNode = e.target.closest('.card');
    if (!cardNode || e.button !== 0 || e.target.closest('button, a, input')) return;
    const t = tasks.get(cardNode.dataset.taskId);
    if (!t || !can.editCard(t)) return;
    const start = { x: e.clientX, y: e.clientY };
    let ghost = null;
    let placeholder = null;
    const rect = cardNode.getBoundingClientRect();
    const onMove = (ev) => {
      if (!ghost) {
        if (Math.hypot(ev.clientX - start.x, ev.clientY - start.y) < 4) return;
        dragging = { kind: 'card' };
        ghost = cardNode.cloneNode(true);
        ghost.classList.add('ghost-card');
        ghost.removeAttribute('tabindex');
        ghost.style.width = `${rect.width}px`;
        document.body.append(ghost);
        placeholder = h('li', { class: 'placeholder', 'aria-hidden': 'true' });
        placeholder.style.height = `${rect.height}px`;
        cardNode.classList.add('dragging');
        cardNode.after(placeholder);
        document.body.classList.add('is-dragging');
      }
      ghost.style.transform = `translate(${ev.clientX - (start.x - rect.left)}px, ${ev.clientY - (start.y - rect.top)}px)`;
      const under = document.elementFromPoint(ev.clientX, ev.clientY);
      const listNode = under?.closest('.list[data-list-id]');
      autoScroll(ev.clientX);
      if (!listNode) return;
      const ul = listNode.querySelector('ul.cards');
      const others = [...ul.children].filter((c) => c.classList.contains('card') && c !== cardNode);
      const next = others.find((c) => { const r = c.getBoundingClientRect(); return ev.clientY < r.top + r.height / 2; });
      if (next) next.before(placeholder); else ul.append(placeholder);
    };
    const onUp = (ev) => {
      document.removeEventListener('pointermove', onMove);
      document.removeEventListener('pointerup', onUp);
      document.removeEventListener('pointercancel', onUp);
      if (!ghost) return;
      ev.preventDefault();
      suppressClick();
      ghost.remove();
      cardNode.classList.remove('dragging');
      document.body.classList.remove('is-dragging');
      const ul = placeholder.parentElement;
      const listId = ul?.closest('.list')?.dataset.listId;
      const cards = ul ? [...ul.children].filter((c) => c.classList.contains('card') && c !== cardNode) : [];
      const at = ul ? [...ul.children].filter((c) => c === placeholder || (c.classList.contains('card') && c !== cardNode)).indexOf(placeholder) : -1;
      placeholder.remove();
      dragging = null;
      const prev = at > 0 ? cards[at - 1].dataset.taskId : null;
      const next = at >= 0 && at < cards.length ? cards[at].dataset.taskId : null;
      const l = listOf(t.list_id);
      const i = l.tasks.indexOf(t);
      const unchanged = listId === t.list_id && ((prev && l.tasks[i - 1]?.id === prev) || (!prev && i === 0 && (!next || l.tasks[1]?.id === next)));
      if (listId && ev.type === 'pointerup' && !unchanged) {
        moveTask(t, listId, prev ? { afterId: prev } : next ? { beforeId: next } : {});
      } else {
        drawList(l);
      }
      flushQueued();
    };
    document.addEventListener('pointermove', onMove);
    document.addEventListener('pointerup', onUp);
    document.addEventListener('pointercancel', onUp);
  });

  function startListDrag(e, l) {
    if (e.button !== 0) return;
    const start = e.clientX;
    let moved = false;
    let placeholder = null;
    const onMove = (ev) => {
      if (!moved) {
        if (Math.abs(ev.clientX - start) < 4) return;
        moved = true;
        dragging = { kind: 'list' };
        placeholder = h('section', { class: 'list placeholder', 'aria-hidden': 'true' });
        l.el.classList.add('dragging');
        l.el.after(placeholder);
        document.body.classList.add('is-dragging');
      }
      autoScroll(ev.clientX);
      const others = [...columns.querySelectorAll('.list[data-list-id]')].filter((s) => s !== l.el);
      const next = others.find((s) => { const r = s.getBoundingClientRect(); return ev.clientX < r.left + r.width / 2; });
      if (next) next.before(placeholder); else if (others.length) others[others.length - 1].after(placeholder);
    };
    const onUp = () => {
      document.removeEventListener('pointermove', onMove);
      document.removeEventListener('pointerup', onUp);
      document.removeEventListener('pointercancel', onUp);
      if (!moved) return;
      l.el.classList.remove('dragging');
      document.body.classList.remove('is-dragging');
      const order = [...columns.children].filter((s) => s === placeholder || (s.dataset.listId && s !== l.el));
      const at = order.indexOf(placeholder);
      placeholder.remove();
      dragging = null;
      const others = lists.filter((x) => x !== l);
      const prev = at > 0 ? others[at - 1] : null;
      const next = others[at] || null;
      const i = lists.indexOf(l);
      if ((prev && lists[i - 1] === prev) || (!prev && i === 0)) { flushQueued(); return; }
      moveList(l, prev ? { afterId: prev.id } : { beforeId: next.id });
      flushQueued();
    };
    document.addEventListener('pointermove', onMove);
    document.addEventListener('pointerup', onUp);
    document.addEventListener('pointercancel', onUp);
  }

  function autoScroll(x) {
    const r = columns.getBoundingClientRect();
    if (x < r.left + 40) columns.scrollLeft -= 20;
    else if (x > r.right - 40) columns.scrollLeft += 20;
  }

  function suppressClick() {
    const stop = (e) => { e.stopPropagation(); e.preventDefault(); };
    document.addEventListener('click', stop, { capture: true, once: true });
    setTimeout(() => document.removeEventListener('click', stop, { capture: true }), 0);
  }

  columns.addEventListener('click', (e) => {
    const cardNode = e.target.closest('.card');
    if (!cardNode || e.target.closest('button, a')) return;
    const t = tasks.get(cardNode.dataset.taskId);
    if (t) open(t);
  });

  function open(t) {
    openCard({
      org, base, task: t, members, labels, can, lists,
      onSaved: (data) => upsertTask(data),
      onDeleted: (id) => removeTask(id),
      onClosed: () => columns.querySelector(`.card[data-task-id="${t.id}"]`)?.focus({ preventScroll: true }),
    });
  }

  async function renameList(l) {
    const input = h('input', { name: 'name', value: l.name, maxlength: 100, required: true });
    const done = () => { f.replaceWith(l.head); nameListEl(l); l.renameBtn?.focus(); };
    const f = form({ class: 'rename-list' }, [field('List name', input),
      h('button', { type: 'submit', class: 'primary small' }, 'Save'),
      h('button', { type: 'button', class: 'ghost small', onclick: done }, 'Cancel')], async () => {
      const { data } = await api('PATCH', `${base}/lists/${l.id}`, { body: { name: input.value } });
      l.name = data.name;
      done();
      announce(`List renamed to ${data.name}`);
    });
    l.head.replaceWith(f);
    input.select();
  }

  async function deleteList(l) {
    if (!(await confirmDialog(`Delete the list "${l.name}" and its ${l.tasks.length} cards?`, 'Delete list'))) return;
    try {
      await api('DELETE', `${base}/lists/${l.id}`);
      removeList(l.id);
      announce(`List ${l.name} deleted`);
    } catch (err) { flash(err.message); }
  }

  // ---- filters in the URL -------------------------------------------------
  function renderFilters() {
    const memberOptions = [['', 'Anyone'], ['me', 'Me'], ['none', 'Nobody'], ...memberList.map((m) => [m.user_id, m.name])];
    const controls = {
      assignee: select({ name: 'assignee' }, memberOptions, filters.assignee),
      label: select({ name: 'label' }, [['', 'Any label'], ...labelList.map((l) => [l.id, l.name])], filters.label),
      priority: select({ name: 'priority' }, [['', 'Any priority'], ...PRIORITY], filters.priority),
      status: select({ name: 'status' }, [['', 'Any status'], ...STATUS], filters.status),
      due: select({ name: 'due' }, [['', 'Any time'], ['overdue', 'Overdue'], ['week', 'Due within 7 days'], ['none', 'No due date']], filters.due),
      q: h('input', { name: 'q', type: 'search', value: filters.q, autocomplete: 'off', maxlength: 200 }),
    };
    const names = { assignee: 'Assignee', label: 'Label', priority: 'Priority', status: 'Status', due: 'Due', q: 'Search' };
    let timer = 0;
    const apply = () => {
      for (const k of Object.keys(controls)) filters[k] = controls[k].value;
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
      const qs = params.toString();
      history.replaceState(null, '', location.pathname + (qs ? `?${qs}` : ''));
      for (const l of lists) drawList(l);
      const n = lists.reduce((s, l) => s + l.tasks.filter(matches).length, 0);
      announce(`${n} cards shown`);
      if (Object.values(filters).some(Boolean) && lists.some((l) => l.next_cursor)) {
        loadAll().then(() => announce(`${lists.reduce((s, l) => s + l.tasks.filter(matches).length, 0)} cards shown`));
      }
    };
    for (const [k, c] of Object.entries(controls)) {
      c.addEventListener(k === 'q' ? 'input' : 'change', () => { clearTimeout(timer); timer = setTimeout(apply, k === 'q' ? 150 : 0); });
    }
    const clear = h('button', { type: 'button', class: 'ghost small', onclick: () => { for (const c of Object.values(controls)) c.value = ''; apply(); } }, 'Clear filters');
    const active = Object.values(filters).some(Boolean);
    return h('details', { class: 'filter-box', open: active || matchMedia('(min-width: 601px)').matches },
      h('summary', null, 'Filters'),
      h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter cards', onsubmit: (e) => e.preventDefault() },
        Object.entries(controls).map(([k, c]) => field(names[k], c)), clear));
  }

  // ---- live ---------------------------------------------------------------
  const fetchTask = async (id) => {
    try {
      const { data } = await api('GET', `${base}/tasks/${id}`);
      if (data.board_id !== boardId) removeTask(id); else upsertTask(data);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) removeTask(id);
    }
  };
  const fetchLists = async () => {
    const fresh = await all(`${base}/boards/${boardId}/lists`);
    const known = new Set(fresh.map((l) => l.id));
    for (const l of lists.slice()) if (!known.has(l.id)) removeList(l.id);
    for (const l of fresh) {
      const mine = listOf(l.id);
      if (mine) Object.assign(mine, { name: l.name, position: l.position });
      else lists.push({ ...l, tasks: [], shown: CHUNK });
    }
    lists.sort(byPosition);
    drawAll();
  };
  async function refetch() {
    try {
      const data = await get(`${base}/boards/${boardId}`);
      boardInfo = data;
      title.textContent = data.name;
      load(data);
      drawAll();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) boardGone();
    }
  }
  function boardGone() {
    stop();
    replace(view, h('div', { class: 'page narrow' }, h('h1', null, boardInfo.name),
      h('p', { role: 'alert' }, 'This board was deleted.'), h('p', null, h('a', { href: `/o/${org.slug}` }, 'Back to the boards'))));
  }

  function handle(ev) {
    if (dragging) { queued.push(ev); return; }
    // The stream is the organization's: other boards' events are skipped,
    // events of no board (labels, members) concern this one too.
    if (ev.board_id && ev.board_id !== boardId) return;
    const id = ev.entity?.id;
    const changes = ev.entity?.changes || {};
    switch (ev.type) {
      case 'label.created': case 'label.updated': case 'label.deleted':
        all(`${base}/labels`).then((fresh) => {
          labels.clear();
          for (const l of fresh) labels.set(l.id, l);
          if (ev.type === 'label.deleted') for (const t of tasks.values()) t.label_ids = t.label_ids.filter((x) => x !== id);
          for (const l of lists) drawList(l);
        });
        return;
      case 'member.joined': case 'member.left': case 'member.removed': case 'member.role_changed':
        if (id === can.me && ev.type === 'member.role_changed') {
          // My role changed: what I may do changed; draw the page again.
          reloadOrgs().then(() => navigate(location.pathname + location.search, { replace: true }));
          return;
        }
        all(`${base}/members`).then((fresh) => {
          members.clear();
          for (const m of fresh) members.set(m.user_id, m);
          for (const l of lists) drawList(l);
        });
        return;
      case 'org.deleted': handle({ type: 'gone' }); return;
      default: break;
    }
    switch (ev.type) {
      case 'reset': refetch(); break;
      case 'gone':
        stop();
        replace(view, h('div', { class: 'page narrow' }, h('h1', null, org.name),
          h('p', { role: 'alert' }, 'You are no longer a member of this organization.'), h('p', null, h('a', { href: '/' }, 'Go to your boards'))));
        break;
      case 'task.created': case 'task.updated': case 'task.moved': if (id) fetchTask(id); break;
      case 'task.deleted': if (id) removeTask(id); break;
      case 'comment.created': case 'comment.deleted': if (changes.task_id) fetchTask(changes.task_id); break;
      case 'list.created': case 'list.updated': case 'list.moved': fetchLists(); break;
      case 'list.deleted': if (id) removeList(id); break;
      case 'board.updated': case 'board.archived': case 'board.restored':
        if (id === boardId) get(`${base}/boards/${boardId}`).then((b) => { boardInfo = { ...boardInfo, ...b }; title.textContent = b.name; archivedNote(); });
        break;
      case 'board.deleted': if (id === boardId) boardGone(); break;
      default: break;
    }
  }
  function flushQueued() { while (queued.length && !dragging) handle(queued.shift()); }

  function archivedNote() {
    if (boardInfo.archived) { note.textContent = 'This board is archived.'; note.hidden = false; note.setAttribute('role', 'status'); }
  }

  const stop = subscribe(org.id, null, handle, (state) => {
    liveDot.textContent = state === 'live' ? 'Live' : 'Reconnecting…';
    liveDot.className = `live-state ${state}`;
  });

  view.append(h('div', { class: 'board-head' }, title, liveDot), note, filterBar, columns);
  archivedNote();
  drawAll();
  if (Object.values(filters).some(Boolean)) loadAll();
  return () => { stop(); for (const o of observers) o.disconnect(); };
}

function readFilters(query) {
  const f = {};
  for (const k of ['assignee', 'label', 'priority', 'status', 'due', 'q']) f[k] = query.get(k) || '';
  return f;
}

export const initials = (name) => name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';

/** A label: a dot of its colour (a validated #rrggbb, set through CSSOM) and its name. */
export function labelChip(l) {
  const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  if (/^#[0-9a-f]{6}$/i.test(l.color)) dot.style.backgroundColor = l.color;
  return h('li', { class: 'label' }, dot, l.name);
}
