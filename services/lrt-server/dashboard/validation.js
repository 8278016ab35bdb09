// Silent-mode validation: the Lung Rescue Team's adjudication file (CSV), read in the browser
// and sent to POST /api/v1/quality/validation, and the comparison it answers: the ECMO-screen
// and consult-trigger 2×2 tables with sensitivity, specificity, PPV and NPV (95 % Wilson
// intervals), the lead time of the true positives, the exact-category confusion matrix, the rows
// set apart and the discordant rows, each linked to its evaluation.
//
// Figures are formatted by `show` only (tests/browser/validation.mjs applies the same rules).

import { ApiError, postText } from './api.js';
import { fmt, h, section, stat, table } from './dom.js';

const WINDOWS = ['6h', '12h', '24h', '48h', '72h'];
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

// The formatting rules of this view. A proportion without a denominator is "undefined" (the API
// gives null), never 0 or NaN.
export const show = {
  count: (n) => String(n),
  ratio: (p) => `${p.numerator}/${p.denominator}`,
  share: (x) => (x === null || x === undefined ? 'undefined' : `${(x * 100).toFixed(1)} %`),
  ci: (ci) => (ci === null || ci === undefined ? 'undefined' : `${(ci.low * 100).toFixed(1)}–${(ci.high * 100).toFixed(1)} %`),
  hours: (x) => (x === null || x === undefined ? '–' : `${x.toFixed(1)} h`),
  spread: (l) => {
    if (l.q1 !== null && l.q3 !== null) return `IQR ${show.hours(l.q1)} to ${show.hours(l.q3)}`;
    if (l.min !== null && l.max !== null) return `range ${show.hours(l.min)} to ${show.hours(l.max)}`;
    return '–';
  },
  yesNo: (b) => (b ? 'yes' : 'no'),
  cell: (c) => (c ? c.toUpperCase() : '–'),
};

const MEASURES = [
  ['sensitivity', 'Sensitivity', 'of the patients the LRT judged positive, the share the system flagged'],
  ['specificity', 'Specificity', 'of the patients the LRT judged negative, the share the system left alone'],
  ['ppv', 'PPV', 'of the system\'s flags, the share the LRT judged positive'],
  ['npv', 'NPV', 'of the patients the system did not flag, the share the LRT judged negative'],
];

function field(label, input, hint) {
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input,
    hint ? h('span', { class: 'hint', id: `${input.id}-hint` }, hint) : null);
}

function form() {
  const windows = h('select', { id: 'window', name: 'window' });
  for (const w of WINDOWS) windows.append(h('option', { value: w, selected: w === '24h' }, w));
  return h('form', { class: 'filters', id: 'validation-form', 'aria-label': 'Adjudication file' },
    field('Adjudication file (CSV)', h('input', { id: 'adjudications', name: 'adjudications', type: 'file', accept: '.csv,text/csv', required: true, 'aria-describedby': 'adjudications-hint' }),
      'columns patient, time, category, consult_warranted (note optional)'),
    field('Look-back window', windows),
    field('Replay run id (optional)', h('input', { id: 'run', name: 'run', type: 'text', pattern: UUID, size: 38, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'run-hint' }),
      'empty: the stored evaluations'),
    h('button', { type: 'submit' }, 'Compare'));
}

// One 2×2 table: rows the system's call, columns the adjudication.
function twoByTwo(key, title, m) {
  const n = (cell) => h('span', { 'data-figure': `${key}.${cell}` }, show.count(m[cell]));
  const t = h('table', { class: 'data two-by-two', id: `${key}-table` },
    h('caption', {}, `${title}: the system's call against the LRT's adjudication`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'System call'), h('th', { scope: 'col', class: 'num' }, 'Adjudicated positive'), h('th', { scope: 'col', class: 'num' }, 'Adjudicated negative'))),
    h('tbody', {},
      h('tr', {}, h('th', { scope: 'row' }, 'System positive'), h('td', { class: 'num' }, 'TP ', n('tp')), h('td', { class: 'num' }, 'FP ', n('fp'))),
      h('tr', {}, h('th', { scope: 'row' }, 'System negative'), h('td', { class: 'num' }, 'FN ', n('fn')), h('td', { class: 'num' }, 'TN ', n('tn')))));
  return t;
}

function measurePanel(key, title, m) {
  const lead = m.lead_time_hours;
  return section(key, title,
    h('p', { class: 'note' }, `Positive: ${m.definition}.`),
    twoByTwo(key, title, m),
    table(`${title}: sensitivity, specificity, PPV and NPV`, ['Measure', { label: 'Rows', numeric: true }, { label: 'Value', numeric: true }, { label: '95 % CI (Wilson)', numeric: true }],
      MEASURES.map(([k, label, meaning]) => [h('abbr', { title: meaning }, label), show.ratio(m[k]), show.share(m[k].value), show.ci(m[k].ci95)]), { id: `${key}-measures` }),
    table(`${title}: lead time of the true positives (first positive call to the LRT's judgement)`, ['Lead time', { label: 'Hours', numeric: true }],
      [['median', show.hours(lead.median)], ['spread', show.spread(lead)], ['true positives timed (n)', show.count(lead.n)]], { id: `${key}-lead` }));
}

function matrixTable(v) {
  const adjudicated = [...new Set(v.agreement.matrix.map((c) => c.adjudicated))];
  const system = [...new Set(v.agreement.matrix.map((c) => c.system))].sort();
  const count = (a, s) => v.agreement.matrix.find((c) => c.adjudicated === a && c.system === s)?.rows ?? 0;
  return table('Exact ECMO category: adjudicated (rows) against the system\'s call (columns), evaluated rows',
    ['Adjudicated \\ system', ...system.map((s) => ({ label: fmt.label(s), numeric: true }))],
    adjudicated.map((a) => [fmt.label(a), ...system.map((s) => show.count(count(a, s)))]),
    { id: 'validation-matrix', empty: 'No evaluated row.' });
}

function listed(id, caption, set) {
  return table(caption, ['Patient', 'Adjudicated at', 'LRT category', 'Consult warranted'],
    set.rows.map((r) => [r.patient, fmt.time(r.time), fmt.label(r.adjudicated_category), show.yesNo(r.consult_warranted)]),
    { id, empty: 'None.' });
}

function discordant(v) {
  const wrong = (c) => c === 'fp' || c === 'fn';
  const rows = v.rows.filter((r) => r.system && (wrong(r.screen) || wrong(r.consult)));
  return section('discordant', `Discordant rows (${rows.length}): the cases to review with the LRT`,
    table('Rows where the system and the LRT disagree (FP or FN in either table)',
      ['Patient', 'Adjudicated at', 'LRT category', 'Consult warranted', 'System category', 'Consult triggers', 'System call at', 'Screen', 'Consult', 'Evaluation'],
      rows.map((r) => [r.patient, fmt.time(r.time), fmt.label(r.adjudicated_category), show.yesNo(r.consult_warranted),
        fmt.label(r.system.category), r.system.consult_triggers.map(fmt.label).join(', ') || 'none', fmt.time(r.system.at),
        show.cell(r.screen), show.cell(r.consult),
        r.system.evaluation_id ? h('a', { href: `/dashboard/evaluations/${encodeURIComponent(r.system.evaluation_id)}`, 'aria-label': `Evaluation of ${r.patient} at ${fmt.time(r.system.at)}` }, 'evaluation') : '–']),
      { id: 'validation-discordant', empty: 'The system agreed with the LRT on every evaluated row.' }));
}

function source(v) {
  const s = v.source;
  if (s.kind !== 'replay') return 'the stored active evaluations (what the service answered)';
  return `replay run ${s.run} (${s.ruleset_id} ${s.ruleset_version}, ${s.state})`;
}

function results(v) {
  const heading = h('h2', { id: 'validation-results-title', tabindex: '-1' }, 'Results');
  const box = h('section', { class: 'results', id: 'validation-results', 'aria-labelledby': 'validation-results-title' },
    heading,
    h('p', { class: 'window' }, `Compared with ${source(v)}; look-back ${v.window} before each adjudicated time; rule set ${v.ruleset_versions.join(', ') || 'none'}.`),
    h('div', { class: 'stats' },
      stat('adjudications', show.count(v.adjudications), 'validation.adjudications'),
      stat('evaluated (in the tables)', show.count(v.evaluated), 'validation.evaluated'),
      stat('not evaluated (no call in the window)', show.count(v.not_evaluated.count), 'validation.not_evaluated',
        `${v.not_evaluated.adjudicated_screen_positive} adjudicated eligible or borderline`),
      stat('system call insufficient data', show.count(v.insufficient_data.count), 'validation.insufficient_data',
        'counted as system negatives of the ECMO screen'),
      stat('exact ECMO category agreement', show.share(v.agreement.exact.value), 'validation.agreement',
        `${show.ratio(v.agreement.exact)}, 95 % CI ${show.ci(v.agreement.exact.ci95)}`)),
    h('div', { class: 'two' },
      measurePanel('screen', 'ECMO screen', v.screen),
      measurePanel('consult', 'Consult trigger', v.consult)),
    discordant(v),
    section('agreement', 'Exact category agreement', matrixTable(v)),
    section('set-apart', 'Rows set apart',
      listed('validation-not-evaluated', 'Not evaluated: no system call in the look-back window (in no table)', v.not_evaluated),
      listed('validation-insufficient', 'System call insufficient data (a system negative of the ECMO screen)', v.insufficient_data)));
  return { box, heading };
}

export async function render(main) {
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '/dashboard' }, 'Quality overview'), ' › silent-mode validation'),
    h('h1', {}, 'Silent-mode validation'),
    h('div', { class: 'panel explain' },
      h('p', {}, 'Each row of the file is one judgement by the Lung Rescue Team (a patient, a time, the ECMO category and whether a consult was warranted), compared with the service\'s own most recent call in the look-back window before that time.'),
      h('p', {}, 'Sensitivity is the share of the team\'s positives the system flagged, specificity the share of its negatives the system left alone, PPV and NPV how often a flag or its absence was right, each with a 95 % Wilson interval ("undefined" when no row stands behind it); lead time is how many hours before the team\'s judgement the system first flagged a true positive.'),
      h('p', {}, 'Rows without any call in the window are counted but left out of the tables; the full method is in the README, section "Silent-mode validation".')));
  const f = form();
  const status = h('p', { class: 'loading', role: 'status', 'aria-live': 'polite' });
  main.append(f, status);
  let shown = null;
  let error = null;
  f.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = f.querySelector('#adjudications').files[0];
    if (!file) return;
    for (const old of [shown, error]) if (old) old.remove();
    shown = null;
    error = null;
    main.setAttribute('data-validation', 'sending');
    status.textContent = 'Comparing…';
    const q = new URLSearchParams({ window: f.querySelector('#window').value });
    const run = f.querySelector('#run').value.trim();
    if (run) q.set('run', run);
    try {
      const text = await file.text();
      const v = await postText(`/api/v1/quality/validation?${q}`, text, 'text/csv');
      const { box, heading } = results(v);
      status.textContent = '';
      shown = box;
      main.append(box);
      heading.focus();
      main.setAttribute('data-validation', 'results');
    } catch (e) {
      status.textContent = '';
      const what = e instanceof ApiError && e.status === 400 ? 'The adjudication file was refused' : 'The comparison failed';
      error = h('div', { class: 'notice error', role: 'alert', id: 'validation-error' }, `${what}: ${e.message}`);
      f.after(error);
      main.setAttribute('data-validation', 'error');
    }
  });
  document.title = 'Silent-mode validation · LRT quality dashboard';
  main.setAttribute('data-ready', 'validation');
}
