// Charts as inline SVG, drawn here (no library). Each chart is an <svg role="img"> with a
// <title> and <desc>; the views put the same figures in a table next to it (the text
// alternative). Colours come from the style sheet (classes s0…s5), so the page's CSP needs no
// inline style.

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// A "nice" upper bound and tick step for a maximum value.
function scale(max) {
  if (!(max > 0)) return { top: 1, step: 1 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  const rounded = Math.max(1, step);
  const integer = Number.isInteger(max) ? Math.ceil(rounded) : rounded;
  return { top: Math.ceil(max / integer) * integer, step: integer };
}

let counter = 0;

function frame(title, description, width, height) {
  const id = `chart-${++counter}`;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d`, class: 'chart' });
  svg.append(s('title', { id: `${id}-t` }, title), s('desc', { id: `${id}-d` }, description));
  return svg;
}

// Lines over time. `labels`: x labels (one per bucket); `series`: [{name, values}].
export function lineChart(title, labels, series) {
  const W = 720, H = 260, L = 48, R = 40, T = 16, B = 44;
  const max = Math.max(0, ...series.flatMap((x) => x.values.filter((v) => v !== null)));
  const { top, step } = scale(max);
  const description = series.map((x) => `${x.name}: ${x.values.reduce((a, b) => a + (b || 0), 0)} in total`).join('; ');
  const svg = frame(title, `${description}. The table below gives every value.`, W, H);
  const x = (i) => L + (labels.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (labels.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(s('text', { x: L - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, String(+v.toFixed(2))));
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === labels.length - 1) {
      svg.append(s('text', { x: x(i), y: H - B + 18, class: 'tick', 'text-anchor': 'middle' }, label));
    }
  });
  series.forEach((serie, k) => {
    const points = serie.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    if (points.length > 1) svg.append(s('polyline', { points: points.join(' '), class: `line s${k}` }));
    serie.values.forEach((v, i) => {
      if (v !== null) {
        const dot = s('circle', { cx: x(i), cy: y(v), r: 3.5, class: `dot s${k}` });
        dot.append(s('title', {}, `${serie.name}, ${labels[i]}: ${v}`));
        svg.append(dot);
      }
    });
  });
  // Legend.
  let lx = L;
  series.forEach((serie, k) => {
    svg.append(s('rect', { x: lx, y: H - 14, width: 10, height: 10, class: `swatch s${k}` }));
    svg.append(s('text', { x: lx + 14, y: H - 5, class: 'legend' }, serie.name));
    lx += 24 + serie.name.length * 7;
  });
  return svg;
}

// Horizontal bars. `items`: [{label, value}] (value ≥ 0), drawn in order.
export function barChart(title, items, { unit = '', klass = 's0', width = 560 } = {}) {
  const W = width, row = 24, L = 190, R = 56, T = 6;
  const H = T * 2 + Math.max(1, items.length) * row;
  const max = Math.max(0, ...items.map((i) => i.value || 0));
  const description = items.map((i) => `${i.label}: ${i.value}${unit}`).join('; ') || 'No data';
  const svg = frame(title, description, W, H);
  items.forEach((item, i) => {
    const yy = T + i * row;
    const w = max > 0 ? ((W - L - R) * (item.value || 0)) / max : 0;
    const label = item.label.length > 28 ? `${item.label.slice(0, 27)}…` : item.label;
    svg.append(s('text', { x: L - 8, y: yy + row / 2 + 4, class: 'tick', 'text-anchor': 'end' }, label));
    const bar = s('rect', { x: L, y: yy + 4, width: Math.max(w, item.value > 0 ? 2 : 0), height: row - 8, rx: 2, class: `bar ${item.klass || klass}` });
    bar.append(s('title', {}, `${item.label}: ${item.value}${unit}`));
    svg.append(bar);
    svg.append(s('text', { x: L + w + 6, y: yy + row / 2 + 4, class: 'value' }, `${item.value}${unit}`));
  });
  if (items.length === 0) svg.append(s('text', { x: L, y: T + row / 2 + 4, class: 'tick' }, 'No data in this window'));
  return svg;
}
