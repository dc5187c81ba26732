// The organization's live events over Server-Sent Events (SPEC §6). The
// stream resumes after a drop from the last id seen (EventSource sends
// Last-Event-ID itself; a reconnect made here sends ?last_event_id=). A
// stream ends with its access token (`end`): reconnect with a fresh one.
// When it cannot be reopened, the organization is asked directly to tell a
// lost membership (404) from a network problem.

import { ApiError, accessToken, api, refresh } from './api.js';

const TYPES = ['task.created', 'task.updated', 'task.moved', 'task.deleted',
  'list.created', 'list.updated', 'list.moved', 'list.deleted',
  'board.created', 'board.updated', 'board.archived', 'board.restored', 'board.deleted',
  'comment.created', 'comment.updated', 'comment.deleted',
  'label.created', 'label.updated', 'label.deleted',
  'member.joined', 'member.left', 'member.removed', 'member.role_changed',
  'org.updated', 'org.deleted'];

/**
 * Subscribes to `orgId`'s events (of `boardId` when given). `onEvent(event)`
 * gets each event in order, `{type: 'reset'}` when the client must reload,
 * `{type: 'gone'}` when the organization is no longer readable.
 * `onState('live'|'reconnecting')` follows the connection. Returns `stop()`.
 */
export function subscribe(orgId, boardId, onEvent, onState = () => {}) {
  let source = null;
  let last = null;
  let stopped = false;
  let failures = 0;
  let timer = 0;

  const connect = async () => {
    if (stopped) return;
    if (!accessToken()) await refresh();
    const token = accessToken();
    if (!token || stopped) return;
    const url = new URL(`/api/v1/orgs/${orgId}/events`, location.origin);
    if (boardId) url.searchParams.set('board_id', boardId);
    if (last) url.searchParams.set('last_event_id', last);
    url.searchParams.set('access_token', token);
    const es = new EventSource(url);
    source = es;
    es.onopen = () => { failures = 0; onState('live'); };
    const deliver = (m) => {
      if (m.lastEventId) last = m.lastEventId;
      let data = null;
      try { data = JSON.parse(m.data); } catch { return; }
      onEvent(data);
    };
    for (const t of TYPES) es.addEventListener(t, deliver);
    es.addEventListener('reset', (m) => {
      let data = {};
      try { data = JSON.parse(m.data); } catch { /* keep the id we have */ }
      if (data.id != null) last = String(data.id);
      onEvent({ type: 'reset' });
    });
    es.addEventListener('end', () => {
      es.close();
      if (source === es) { source = null; reopen(true); }
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED && source === es) {
        source = null;
        reopen(false);
      } else {
        onState('reconnecting');
      }
    };
  };

  const reopen = async (fresh) => {
    if (stopped) return;
    onState('reconnecting');
    if (fresh) {
      // `end`: the token that opened the stream expired, or its session was
      // revoked. The server still accepts an expired token for a few seconds
      // (clock leeway), so reconnecting with it would end again at once, in
      // a tight loop: renew it first. Signed out: stay closed.
      const renewed = await refresh();
      if (stopped || !accessToken()) return;
      if (!renewed) { failures += 1; fresh = false; }
    } else {
      failures += 1;
      // Refused: ask why. A 404 means the membership or organization is gone.
      try {
        await api('GET', `/api/v1/orgs/${orgId}`);
      } catch (err) {
        if (err instanceof ApiError && (err.status === 404 || err.status === 401)) {
          if (err.status === 404) onEvent({ type: 'gone' });
          return;
        }
      }
      await refresh();
    }
    clearTimeout(timer);
    timer = setTimeout(connect, fresh ? 0 : Math.min(15000, 500 * 2 ** Math.min(failures, 5)));
  };

  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
    source = null;
  };
}
