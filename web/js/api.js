// The JSON API client: the access token lives in memory only; the refresh
// token in an HttpOnly cookie the script never sees (SPEC §10). Requests
// that fail on the network are retried with backoff while a banner says so;
// creates carry an Idempotency-Key, so a retried create happens once.

import { banner } from './dom.js';

const SESSION = { 'X-Orgboard-Session': 'cookie' };
let access = null;
let refreshTimer = 0;
let refreshing = null;
const listeners = new Set();

/** The signed-in user, or null. */
export const session = { user: null };

/** An API error: `status` (0 for no answer) and the problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || null;
    this.code = problem?.code || null;
  }
}

/** Calls `fn(user)` whenever the session starts or ends. */
export function onSession(fn) { listeners.add(fn); }

/** The current access token (for the events stream). */
export function accessToken() { return access; }

// A hint (not a secret: the token stays in its HttpOnly cookie) that this
// browser holds a session, so a page load of someone signed out does not
// ask the server for one it cannot have (a 401 in the console, a request on
// the login page's critical path). A stale hint costs one refresh, after
// which it is gone.
const HINT = 'orgboard:signed-in';
const hint = {
  get: () => { try { return localStorage.getItem(HINT) === '1'; } catch { return true; } },
  set: (on) => { try { if (on) localStorage.setItem(HINT, '1'); else localStorage.removeItem(HINT); } catch { /* private mode */ } },
};

/** Whether a page load should try to resume a session. */
export const maybeSignedIn = () => hint.get();

function setSession(s) {
  access = s.access_token;
  session.user = s.user;
  hint.set(true);
  clearTimeout(refreshTimer);
  // Renew silently at 80 % of the token's life.
  refreshTimer = setTimeout(() => { refresh(); }, Math.max(5, s.expires_in * 0.8) * 1000);
  listeners.forEach((fn) => fn(session.user));
}

function clearSession() {
  const had = access !== null || session.user !== null;
  access = null;
  session.user = null;
  hint.set(false);
  clearTimeout(refreshTimer);
  if (had) listeners.forEach((fn) => fn(null));
}

/**
 * Trades the cookie's refresh token for a new pair. Concurrent callers share
 * one request. Resolves true when signed in.
 */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const res = await send('POST', '/api/v1/auth/refresh', {}, SESSION, { retries: 3 });
        setSession(res.data);
        return true;
      } catch (err) {
        if (err.status === 401) clearSession();
        return false;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** Signs in and keeps the session. */
export async function login(email, password) {
  const res = await send('POST', '/api/v1/auth/login', { email, password }, SESSION, { retries: 0 });
  setSession(res.data);
  return res.data.user;
}

/** Creates an account, signs in. */
export async function signup(name, email, password) {
  const res = await send('POST', '/api/v1/auth/signup', { name, email, password }, SESSION, { retries: 0 });
  setSession(res.data);
  return res.data.user;
}

/** Ends the session on the server and here. */
export async function logout() {
  try { await send('POST', '/api/v1/auth/logout', {}, SESSION, { retries: 1 }); } catch { /* signed out here anyway */ }
  clearSession();
}

/** Asks for a password reset link by email (the answer never says whether the account exists). */
export async function requestPasswordReset(email) {
  await send('POST', '/api/v1/auth/password-reset', { email }, {}, { retries: 0 });
}

/** Sets a new password with the token of an emailed link; every session ends. */
export async function confirmPasswordReset(token, newPassword) {
  await send('POST', '/api/v1/auth/password-reset/confirm', { token, new_password: newPassword }, {}, { retries: 0 });
}

/** Deletes the caller's account (with its password); the session ends here too. */
export async function deleteAccount(password) {
  await api('DELETE', '/api/v1/me', { body: { password }, headers: SESSION });
  clearSession();
}

/** Replaces the signed-in user after an edit of `/me`. */
export function updateUser(user) {
  session.user = user;
  listeners.forEach((fn) => fn(user));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One HTTP exchange with retries on network failure and 502/503/504
 * (`retries` attempts more). Resolves `{status, data, headers}`; rejects
 * with ApiError.
 */
async function send(method, path, body, headers, { retries = 4 } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      res = null;
    }
    const retryable = !res || [502, 503, 504].includes(res.status);
    if (retryable && attempt < retries) {
      banner('Cannot reach the server. Retrying…');
      await sleep(Math.min(8000, 500 * 2 ** attempt));
      continue;
    }
    if (!res) {
      banner('Cannot reach the server. Check your connection; your changes were not saved.');
      throw new ApiError(0, { title: 'Cannot reach the server', detail: 'Cannot reach the server. Nothing was saved; try again.' });
    }
    banner(null);
    let data = null;
    const type = res.headers.get('Content-Type') || '';
    if (res.status !== 204 && res.status !== 304 && type.includes('json')) {
      try { data = await res.json(); } catch { data = null; }
    }
    if (!res.ok && res.status !== 304) throw new ApiError(res.status, data);
    return { status: res.status, data, headers: res.headers };
  }
}

/**
 * An authenticated API call. `opts`: `body`, `headers`, `ifMatch` (a task
 * version), `create` (adds an Idempotency-Key so retries are safe). On an
 * expired token it refreshes once and retries; when the session is gone it
 * goes to the login page.
 */
export async function api(method, path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.ifMatch != null) headers['If-Match'] = `"${opts.ifMatch}"`;
  if (opts.create) headers['Idempotency-Key'] = crypto.randomUUID();
  const writes = method !== 'GET';
  const retries = writes && !opts.create && method === 'POST' ? 0 : 4;
  for (let attempt = 0; ; attempt++) {
    if (!access && !(await refresh())) {
      sessionLost();
      throw new ApiError(401, { title: 'Signed out', detail: 'Your session has ended. Log in again.' });
    }
    try {
      return await send(method, path, opts.body, { ...headers, Authorization: `Bearer ${access}` }, { retries });
    } catch (err) {
      if (err.status === 401 && attempt === 0 && err.code === 'unauthorized') {
        access = null;
        continue;
      }
      if (err.status === 401) { clearSession(); sessionLost(); }
      throw err;
    }
  }
}

let lostHandler = () => {};
/** What to do when the session cannot be renewed (main.js: go to login). */
export function onSessionLost(fn) { lostHandler = fn; }
function sessionLost() { lostHandler(); }

/** GET shorthand returning the data. */
export const get = async (path) => (await api('GET', path)).data;

/** Every item of a paged collection (bounded: at most `max`). */
export async function all(path, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
