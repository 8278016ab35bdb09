// The overview: filters, then one panel per aggregate of /api/v1/quality, each a chart and the
// table that is its text alternative.

import { get } from './api.js';
import { barChart, lineChart } from './charts.js';
import { fmt, h, section, stat, table } from './dom.js';

const INTERVALS = ['day', 'week', 'month'];

// The filters from the page's query string (the form is a GET form: the URL is shareable).
function filters() {
  const q = new URLSearchParams(window.location.search);
  const today = new Date();
  const to = q.get('to') || new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1)).toISOString().slice(0, 10);
  const from = q.get('from') || new Date(Date.parse(to) - 30 * 86400e3).toISOString().slice(0, 10);
  const interval = INTERVALS.includes(q.get('interval')) ? q.get('interval') : 'day';
  return { from, to, interval, service: q.get('service') || '', category: q.get('category') || '' };
}

function query(f, extra = {}) {
  const q = new URLSearchParams();
  q.set('from', `${f.from}T00:00:00Z`);
  q.set('to', `${f.to}T00:00:00Z`);
  q.set('interval', f.interval);
  if (f.service) q.set('service', f.service);
  if (f.category) q.set('category', f.category);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

function field(label, input) {
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
}

function filterForm(f) {
  const select = (id, options, value) => {
    const el = h('select', { id, name: id });
    for (const [v, label] of options) el.append(h('option', { value: v, selected: v === value }, label));
    return el;
  };
  return h('form', { class: 'filters', method: 'get', action: '/dashboard', 'aria-label': 'Filters' },
    field('From', h('input', { id: 'from', name: 'from', type: 'date', value: f.from, required: true })),
    field('To (exclusive)', h('input', { id: 'to', name: 'to', type: 'date', value: f.to, required: true })),
    field('Interval', select('interval', INTERVALS.map((i) => [i, i]), f.interval)),
    field('Service', select('service', [['', 'all'], ['lrt-patient-view', 'patient-view'], ['lrt-order-select', 'order-select'], ['lrt-order-sign', 'order-sign']], f.service)),
    field('ECMO category', select('category', [['', 'all'], ['eligible', 'eligible'], ['borderline', 'borderline'], ['ineligible', 'ineligible'], ['not_indicated', 'not indicated'], ['insufficient_data', 'insufficient data'], ['out_of_scope', 'out of scope']], f.category)),
    h('button', { type: 'submit' }, 'Apply'));
}

function details(summary, content) {
  return h('details', { class: 'alt' }, h('summary', {}, summary), content);
}

function alertsPanel(a) {
  const labels = a.series.map((b) => (a.window.interval === 'month' ? fmt.month(b.start) : fmt.day(b.start)));
  const chart = lineChart('Hook calls, calls answered with a card, and cards over time', labels, [
    { name: 'calls', values: a.series.map((b) => b.calls) },
    { name: 'calls with cards', values: a.series.map((b) => b.calls_with_cards) },
    { name: 'cards', values: a.series.map((b) => b.cards) },
    { name: 'errors', values: a.series.map((b) => b.errors) },
  ]);
  const seriesTable = table('Hook calls per interval', ['Interval start', { label: 'Calls', numeric: true }, { label: 'With cards', numeric: true }, { label: 'Cards', numeric: true }, { label: 'Errors', numeric: true }],
    a.series.map((b) => [fmt.day(b.start), b.calls, b.calls_with_cards, b.cards, b.errors]), { id: 'alerts-series' });
  const indicators = a.by_indicator.map((i) => ({ label: fmt.label(i.indicator), value: i.cards, klass: `ind-${i.indicator}` }));
  return section('alerts', 'Alerts',
    h('div', { class: 'stats' },
      stat('hook calls', fmt.int(a.totals.calls), 'alerts.calls'),
      stat('calls answered with a card', fmt.pct(a.totals.card_share), 'alerts.card_share'),
      stat('cards shown', fmt.int(a.totals.cards), 'alerts.cards'),
      stat('error answers', fmt.int(a.totals.errors), 'alerts.errors'),
      stat('latency p90', fmt.ms(a.latency_ms.p90), 'alerts.latency_p90', `p50 ${fmt.ms(a.latency_ms.p50)}, p99 ${fmt.ms(a.latency_ms.p99)}`)),
    h('figure', {}, chart, h('figcaption', {}, 'Alerts over time.')),
    details('Alerts over time as a table', seriesTable),
    h('div', { class: 'two' },
      h('div', {}, h('h3', {}, 'Cards by indicator'), barChart('Cards by indicator', indicators),
        table('Cards by indicator', ['Indicator', { label: 'Cards', numeric: true }], a.by_indicator.map((i) => [fmt.label(i.indicator), i.cards]), { id: 'alerts-indicators' })),
      h('div', {}, h('h3', {}, 'Calls by ECMO category'), barChart('Calls by ECMO category', a.by_category.map((c) => ({ label: fmt.label(c.category), value: c.calls }))),
        table('Calls by ECMO category', ['Category', { label: 'Calls', numeric: true }, { label: 'With cards', numeric: true }], a.by_category.map((c) => [fmt.label(c.category), c.calls, c.calls_with_cards]), { id: 'alerts-categories' }))),
    table('Calls by service', ['Service', 'Hook', { label: 'Calls', numeric: true }, { label: 'With cards', numeric: true }, { label: 'Cards', numeric: true }, { label: 'Errors', numeric: true }],
      a.by_service.map((s) => [s.service, s.hook ?? '–', s.calls, s.calls_with_cards, s.cards, s.errors]), { id: 'alerts-services' }),
    table('Error answers by status', [{ label: 'Status', numeric: false }, 'Code', { label: 'Calls', numeric: true }],
      a.errors_by_status.map((e) => [String(e.status), e.error_code ?? '–', e.calls]), { id: 'alerts-errors' }));
}

function feedbackPanel(f) {
  return section('feedback', 'Feedback on cards',
    h('div', { class: 'stats' },
      stat('cards', fmt.int(f.totals.cards), 'feedback.cards'),
      stat('accepted', fmt.int(f.totals.accepted), 'feedback.accepted'),
      stat('overridden', fmt.int(f.totals.overridden), 'feedback.overridden'),
      stat('no feedback', fmt.int(f.totals.no_feedback), 'feedback.no_feedback'),
      stat('acceptance rate', fmt.pct(f.totals.acceptance_rate), 'feedback.acceptance_rate', 'accepted ÷ (accepted + overridden)')),
    h('div', { class: 'two' },
      h('div', {}, h('h3', {}, 'Override reasons'),
        barChart('Override reasons, most frequent first', f.override_reasons.map((r) => ({ label: r.display || r.code || '(no reason given)', value: r.overrides })), { klass: 's3' }),
        table('Override reasons', ['Reason', { label: 'Overrides', numeric: true }, { label: 'With a comment', numeric: true }],
          f.override_reasons.map((r) => [r.display || r.code || '(no reason given)', r.overrides, r.with_comment]), { id: 'feedback-reasons' })),
      h('div', {}, h('h3', {}, 'By card type'),
        table('Feedback by card type', ['Service', 'Indicator', { label: 'Cards', numeric: true }, { label: 'Accepted', numeric: true }, { label: 'Overridden', numeric: true }, { label: 'None', numeric: true }],
          f.by_card_type.map((c) => [c.service, fmt.label(c.indicator), c.cards, c.accepted, c.overridden, c.no_feedback]), { id: 'feedback-types' }))),
    table('Feedback by recommendation', ['Recommendation', { label: 'Cards', numeric: true }, { label: 'Accepted', numeric: true }, { label: 'Overridden', numeric: true }, { label: 'None', numeric: true }],
      f.by_recommendation.map((r) => [fmt.label(r.recommendation), r.cards, r.accepted, r.overridden, r.no_feedback]), { id: 'feedback-recommendations' }));
}

function consultsPanel(c) {
  const t = c.timeliness_s;
  return section('consults', 'LRT consult pages',
    h('div', { class: 'stats' },
      stat('pages', fmt.int(c.totals.pages), 'consults.pages'),
      stat('acknowledged', fmt.int(c.totals.acknowledged), 'consults.acknowledged'),
      stat('dead-lettered', fmt.int(c.totals.dead_lettered), 'consults.dead_lettered'),
      stat('to delivery, median', fmt.duration(t.to_delivery_median), 'consults.to_delivery_median', `p90 ${fmt.duration(t.to_delivery_p90)}`),
      stat('to acknowledgement, median', fmt.duration(t.to_acknowledgement_median), 'consults.to_acknowledgement_median', `p90 ${fmt.duration(t.to_acknowledgement_p90)}`)),
    h('p', { class: 'note' }, 'Times run from the first qualifying evaluation of the patient to the page\'s delivery and to its acknowledgement.'),
    h('div', { class: 'two' },
      h('div', {}, h('h3', {}, 'Pages by urgency'), barChart('Pages by urgency', c.by_urgency.map((u) => ({ label: fmt.label(u.urgency), value: u.pages, klass: `urg-${u.urgency}` }))),
        table('Pages by urgency', ['Urgency', { label: 'Pages', numeric: true }], c.by_urgency.map((u) => [fmt.label(u.urgency), u.pages]), { id: 'consults-urgency' })),
      h('div', {}, h('h3', {}, 'Pages by reason'),
        table('Pages by reason', ['Reason', 'Urgency', { label: 'Pages', numeric: true }], c.by_reason.map((r) => [fmt.label(r.reason), fmt.label(r.urgency), r.pages]), { id: 'consults-reasons' }))),
    table('Delivery problems', ['Measure', { label: 'Count', numeric: true }], [
      ['pages retried', c.totals.retried], ['failed delivery attempts', c.totals.failed_attempts], ['pages delivered', c.totals.delivered]], { id: 'consults-delivery' }));
}

function patientsPanel(p) {
  const months = [...new Set(p.series.map((b) => fmt.month(b.start)))];
  const categories = [...new Set(p.series.map((b) => b.category ?? 'unknown'))];
  const count = (m, cat) => p.series.filter((b) => fmt.month(b.start) === m && (b.category ?? 'unknown') === cat).reduce((a, b) => a + b.patients, 0);
  return section('patients', 'Patients per ECMO category',
    h('p', { class: 'note' }, 'Distinct patients, counted in the month they first qualified for the category.'),
    h('div', { class: 'two' },
      h('div', {}, barChart('Distinct patients by ECMO category', p.by_category.map((c) => ({ label: fmt.label(c.category), value: c.patients, klass: `cat-${c.category}` }))),
        table('Distinct patients by ECMO category', ['Category', { label: 'Patients', numeric: true }], p.by_category.map((c) => [fmt.label(c.category), c.patients]), { id: 'patients-categories' })),
      h('div', {}, table('Patients per month and category', ['Month', ...categories.map((c) => ({ label: fmt.label(c), numeric: true }))],
        months.map((m) => [m, ...categories.map((c) => count(m, c))]), { id: 'patients-months' }))));
}

function dataQualityPanel(d) {
  const share = d.evaluations > 0 ? d.evaluations_with_items / d.evaluations : null;
  return section('data-quality', 'Data quality',
    h('div', { class: 'stats' },
      stat('evaluations', fmt.int(d.evaluations), 'data_quality.evaluations'),
      stat('with a data-quality item', fmt.int(d.evaluations_with_items), 'data_quality.evaluations_with_items', fmt.pct(share))),
    h('p', { class: 'note' }, 'What the EHR failed to chart or charted implausibly, most frequent first.'),
    barChart('Most frequent data-quality items', d.items.slice(0, 12).map((i) => ({ label: i.subject ? `${i.code} (${i.subject})` : i.code, value: i.evaluations, klass: 's4' }))),
    table('Data-quality items', ['Item', 'Subject', { label: 'Evaluations', numeric: true }, { label: 'Patients', numeric: true }],
      d.items.map((i) => [i.code, i.subject ?? '–', i.evaluations, i.patients]), { id: 'data-quality-items' }));
}

function evaluationLink(id, text) {
  return h('a', { href: `/dashboard/evaluations/${encodeURIComponent(id)}` }, text);
}

function side(sideOf) {
  return [fmt.label(sideOf.category), fmt.label(sideOf.urgency), sideOf.recommendations.map(fmt.label).join(', ') || '–'];
}

function shadowPanel(s) {
  const pairs = s.versions.map((v) => `${v.active} (active) against ${v.shadow} (shadow): ${v.pairs} pairs`).join('; ');
  return section('shadow', 'Shadow rule set',
    h('div', { class: 'stats' },
      stat('pairs compared', fmt.int(s.pairs), 'shadow.pairs'),
      stat('agree on every field', fmt.int(s.all_agree), 'shadow.all_agree', s.pairs > 0 ? fmt.pct(s.all_agree / s.pairs) : null),
      stat('disagreements listed', fmt.int(s.disagreements.length), 'shadow.listed')),
    pairs ? h('p', { class: 'note' }, pairs) : null,
    table('Agreement per field', ['Field', { label: 'Agree', numeric: true }, { label: 'Disagree', numeric: true }, { label: 'Agreement', numeric: true }],
      s.fields.map((f) => [fmt.label(f.field), f.agree, f.disagree, fmt.pct(f.agreement)]), { id: 'shadow-fields' }),
    table('Disagreements between the active and the shadow evaluation of the same call',
      ['When', 'Differs in', 'Active: category', 'urgency', 'recommendations', 'Shadow: category', 'urgency', 'recommendations', 'Evaluations'],
      s.disagreements.map((d) => [fmt.time(d.created_at), d.fields.map(fmt.label).join(', '), ...side(d.active), ...side(d.shadow),
        h('span', { class: 'links' }, evaluationLink(d.active.evaluation_id, 'active'), ' · ', evaluationLink(d.shadow.evaluation_id, 'shadow'))]),
      { id: 'shadow-disagreements', empty: 'The shadow rule set agreed on every call in this window.' }),
    s.next_cursor ? h('p', { class: 'note' }, 'More disagreements exist: narrow the window to list them.') : null);
}

export async function render(main) {
  const f = filters();
  main.append(h('h1', {}, 'Quality overview'), filterForm(f));
  const status = h('p', { class: 'loading', role: 'status' }, 'Loading figures…');
  main.append(status);
  const [alerts, feedback, consults, patients, dataQuality, shadow] = await Promise.all([
    get(`/api/v1/quality/alerts?${query(f)}`),
    get(`/api/v1/quality/feedback?${query(f)}`),
    get(`/api/v1/quality/consults?${query(f)}`),
    get(`/api/v1/quality/patients?${query(f, { interval: 'month' })}`),
    get(`/api/v1/quality/data-quality?${query(f)}`),
    get(`/api/v1/quality/shadow?${query(f, { limit: '50' })}`),
  ]);
  status.remove();
  const nav = h('nav', { class: 'toc', 'aria-label': 'Sections' }, h('ul', {},
    [['alerts', 'Alerts'], ['feedback', 'Feedback'], ['consults', 'Consults'], ['patients', 'Patients'], ['data-quality', 'Data quality'], ['shadow', 'Shadow']]
      .map(([id, label]) => h('li', {}, h('a', { href: `#${id}` }, label))),
    h('li', { class: 'elsewhere' }, h('a', { href: '/dashboard/validation', id: 'validation-link' }, 'Silent-mode validation'))));
  main.append(
    h('p', { class: 'window' }, `Window ${fmt.day(alerts.window.from)} to ${fmt.day(alerts.window.to)} (exclusive), by ${alerts.window.interval}.`),
    nav,
    alertsPanel(alerts), feedbackPanel(feedback), consultsPanel(consults),
    patientsPanel(patients), dataQualityPanel(dataQuality), shadowPanel(shadow));
  main.setAttribute('data-ready', 'overview');
}
