// Small DOM helpers: elements are built with textContent only (never innerHTML), so no value
// from the API can inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// A table with a caption, column headers (scope=col) and, when `rowHeader`, a row header per
// row (scope=row). `rows` are arrays of cells (text, numbers or nodes).
export function table(caption, columns, rows, { rowHeader = true, id, empty = 'None in this window.' } = {}) {
  const t = h('table', { class: 'data', id });
  t.append(h('caption', {}, caption));
  t.append(h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.numeric ? 'num' : null }, c.label ?? c)))));
  const body = h('tbody');
  if (rows.length === 0) {
    body.append(h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty)));
  }
  for (const row of rows) {
    body.append(h('tr', {}, row.map((cell, i) => {
      const numeric = columns[i] && columns[i].numeric;
      const tag = i === 0 && rowHeader ? 'th' : 'td';
      return h(tag, { scope: tag === 'th' ? 'row' : null, class: numeric ? 'num' : null }, cell);
    })));
  }
  t.append(body);
  return t;
}

// A figure with its label, shown big. `figure` names it for tests (data-figure).
export function stat(label, value, figure, note) {
  return h('div', { class: 'stat' },
    h('div', { class: 'stat-value', 'data-figure': figure }, value),
    h('div', { class: 'stat-label' }, label),
    note ? h('div', { class: 'stat-note' }, note) : null);
}

export function section(id, title, ...children) {
  const heading = h('h2', { id: `${id}-title` }, title);
  return h('section', { class: 'panel', id, 'aria-labelledby': `${id}-title` }, heading, ...children);
}

// Formatting shared by every view.
export const fmt = {
  int: (n) => (n === null || n === undefined ? '–' : String(n)),
  pct: (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)} %`),
  ms: (x) => (x === null || x === undefined ? '–' : `${Math.round(x)} ms`),
  duration: (s) => {
    if (s === null || s === undefined) return '–';
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  },
  day: (iso) => (iso ? iso.slice(0, 10) : '–'),
  month: (iso) => (iso ? iso.slice(0, 7) : '–'),
  time: (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+/, '').replace('+00:00', 'Z') : '–'),
  label: (s) => (s === null || s === undefined || s === '' ? '(none)' : String(s).replaceAll('_', ' ')),
};
