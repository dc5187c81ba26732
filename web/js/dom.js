// DOM helpers. User text is only ever set as text (textContent, value,
// attributes): nothing here parses HTML.

let ids = 0;
/** A fresh element id. */
export const uid = (p = 'f') => `${p}${++ids}`;

/**
 * Builds an element: `h('button', {class: 'x', onclick: f}, 'Save')`.
 * Attributes whose value is null/false are left out; `on*` are listeners;
 * children are nodes, strings (as text), arrays, or null.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: `<div class="field"><label>…</label>control</div>`. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const err = h('p', { class: 'field-error', id: control.id + '-err', hidden: true });
  control.setAttribute('aria-describedby', err.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control,
    hint ? h('p', { class: 'hint' }, hint) : null, err);
}

/** A `<select>` of `[value, text]` options. */
export function select(attrs, options, current) {
  return h('select', attrs, options.map(([v, t]) => h('option', { value: v, selected: v === current }, t)));
}

const announcer = () => document.getElementById('announce');
/** Says `msg` to screen readers (and tests) without moving focus. */
export function announce(msg) {
  const el = announcer();
  if (!el) return;
  el.textContent = '';
  // A new text node in a later frame is read even when the text repeats.
  requestAnimationFrame(() => { el.textContent = msg; });
}

/** Shows a connection banner (null hides it). */
export function banner(msg) {
  const el = document.getElementById('banner');
  if (!el) return;
  el.textContent = msg || '';
  el.hidden = !msg;
}

/** The message of an error for people. */
export function message(err) {
  if (!err) return '';
  if (err.problem) {
    const p = err.problem;
    const fields = (p.errors || []).map((e) => `${e.field}: ${e.message}`).join('; ');
    return fields ? `${p.detail || p.title} (${fields})` : (p.detail || p.title || `Error ${err.status}`);
  }
  return err.message || String(err);
}

/**
 * A form whose submit runs `action(form)`: the submit button is disabled
 * while it runs, field errors of a problem are shown under their fields,
 * other errors in the form's alert. Typed text stays on failure.
 */
export function form(attrs, children, action) {
  const alert = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const f = h('form', { ...attrs, novalidate: true }, children, alert);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (f.dataset.busy) return;
    f.dataset.busy = '1';
    const buttons = [...f.querySelectorAll('button[type=submit], button:not([type])')];
    buttons.forEach((b) => { b.disabled = true; });
    clearErrors(f, alert);
    try {
      await action(f);
    } catch (err) {
      showErrors(f, alert, err);
    } finally {
      delete f.dataset.busy;
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
  return f;
}

function clearErrors(f, alert) {
  alert.hidden = true;
  alert.textContent = '';
  for (const el of f.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of f.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
}

function showErrors(f, alert, err) {
  let shown = false;
  for (const e of err?.problem?.errors || []) {
    const ctl = f.querySelector(`[name="${CSS.escape(e.field)}"]`);
    if (!ctl) continue;
    ctl.setAttribute('aria-invalid', 'true');
    const box = document.getElementById(ctl.id + '-err');
    if (box) { box.textContent = e.message; box.hidden = false; }
    if (!shown) ctl.focus();
    shown = true;
  }
  if (!shown || !err?.problem?.errors?.length) {
    alert.textContent = message(err);
    alert.hidden = false;
  }
}

/** A modal `<dialog>` appended to the body and removed when closed. */
export function dialog(attrs, ...children) {
  const d = h('dialog', attrs, children);
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

/** Asks a yes/no question in a dialog; resolves true for `confirmText`. */
export function confirmDialog(text, confirmText) {
  return new Promise((resolve) => {
    let answer = false;
    const d = dialog({ class: 'confirm', 'aria-label': confirmText },
      h('p', null, text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'danger', onclick: () => { answer = true; d.close(); } }, confirmText),
        h('button', { type: 'button', onclick: () => d.close() }, 'Cancel')));
    d.addEventListener('close', () => resolve(answer));
  });
}

/** `YYYY-MM-DD` of a date in local time. */
export function localDay(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** A short local date and time for people. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
