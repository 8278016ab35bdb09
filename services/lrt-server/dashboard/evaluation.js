// One evaluation: what the engine concluded and why (explanations with the values, their times
// and the criteria tested), the card as the clinician saw it, the feedback on it and the page
// sent to the LRT.

import { ApiError, get } from './api.js';
import { fmt, h, section, table } from './dom.js';

function dl(pairs) {
  const list = h('dl', { class: 'facts' });
  for (const [term, value, figure] of pairs) {
    list.append(h('dt', {}, term), h('dd', { 'data-figure': figure }, value ?? '–'));
  }
  return list;
}

function num(x, digits = 0) {
  return x === null || x === undefined ? '–' : Number(x).toFixed(digits);
}

function criterionValue(v) {
  if (v === null || v === undefined) return 'unknown';
  if (typeof v === 'object') return JSON.stringify(v);
  return typeof v === 'number' ? String(+v.toFixed(3)) : String(v);
}

function card(c, i) {
  const indicator = c.indicator || 'info';
  return h('article', { class: `cds-card ind-${indicator}`, 'aria-labelledby': `card-${i}-summary` },
    h('header', {},
      h('span', { class: `badge ind-${indicator}` }, indicator),
      h('h3', { id: `card-${i}-summary`, 'data-figure': `card.${i}.summary` }, c.summary)),
    c.detail ? h('div', { class: 'detail' }, c.detail) : null,
    c.suggestions && c.suggestions.length
      ? h('div', {}, h('h4', {}, 'Suggestions'), h('ul', {}, c.suggestions.map((s) => h('li', {}, s.label))))
      : null,
    c.overrideReasons && c.overrideReasons.length
      ? h('p', { class: 'note' }, `Override reasons offered: ${c.overrideReasons.map((r) => r.display || r.code).join('; ')}`)
      : null,
    c.links && c.links.length
      ? h('p', { class: 'note' }, 'Links: ', c.links.map((l) => l.label).join('; '))
      : null,
    c.source ? h('p', { class: 'source' }, `Source: ${c.source.label}`) : null);
}

function explanation(e, i) {
  const criteria = e.criteria || [];
  return h('article', { class: 'explanation', 'aria-labelledby': `expl-${i}` },
    h('h3', { id: `expl-${i}` }, `${fmt.label(e.subject)}: ${criterionValue(e.conclusion)}`),
    h('p', { class: 'note' }, `Rule ${e.rule} (${e.kind}). ${e.cites || ''}`),
    e.reasons && e.reasons.length ? h('p', {}, `Reasons: ${e.reasons.map(fmt.label).join(', ')}`) : null,
    criteria.length
      ? table(`Criteria of ${e.rule}`, ['Fact', 'Test', { label: 'Value', numeric: true }, 'Unit', 'Observed', 'Result'],
        criteria.map((c) => [fmt.label(c.fact), c.test, criterionValue(c.value), c.unit ?? '', fmt.time(c.at), String(c.result)]))
      : null);
}

export async function render(main, id) {
  let ev;
  try {
    ev = await get(`/api/v1/evaluations/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.append(h('h1', {}, 'Evaluation not found'),
        h('p', {}, 'No evaluation with this id is visible to you (it may belong to another tenant, or have been purged).'),
        h('p', {}, h('a', { href: '/dashboard' }, 'Back to the overview')));
      main.setAttribute('data-ready', 'evaluation');
      return;
    }
    throw e;
  }
  const a = ev.assessment || {};
  const cards = (ev.response && ev.response.cards) || [];
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '/dashboard' }, 'Quality overview'), ' › evaluation'),
    h('h1', {}, `Evaluation of patient ${ev.patient_id}`),
    dl([
      ['Evaluation', ev.id, 'evaluation.id'],
      ['Evaluated at', fmt.time(ev.evaluated_at), 'evaluation.evaluated_at'],
      ['Role', ev.role === 'shadow' ? 'shadow (never shown)' : 'active (shown)', 'evaluation.role'],
      ['Service and hook', `${ev.service_id} (${ev.hook})`, 'evaluation.service'],
      ['Rule set', `${ev.ruleset_id} ${ev.ruleset_version}`, 'evaluation.ruleset'],
      ['ECMO category', fmt.label(ev.ecmo_category), 'evaluation.ecmo_category'],
      ['ECMO urgency', fmt.label(a.ecmo_urgency), 'evaluation.ecmo_urgency'],
      ['Berlin category', fmt.label(ev.berlin_category), 'evaluation.berlin_category'],
      ['P/F ratio', num(ev.pf_ratio), 'evaluation.pf_ratio'],
      ['PaO₂ / FiO₂', `${num(a.pao2_mmHg)} mmHg / ${num(a.fio2_fraction, 2)}`, 'evaluation.pao2_fio2'],
      ['Murray score', num(a.murray_score, 2), 'evaluation.murray'],
      ['Answer', `HTTP ${ev.status} in ${num(ev.latency_ms, 1)} ms`, 'evaluation.status'],
    ]));

  main.append(section('recommendations', 'Recommendations and consult triggers',
    table('Recommendations', ['Recommendation', 'Urgency', 'Rules'],
      (a.recommendation_details || []).map((r) => [fmt.label(r.code ?? r.recommendation ?? r.id), fmt.label(r.urgency), (r.rules || []).join(', ')]), { id: 'evaluation-recommendations', empty: 'No recommendation.' }),
    table('Consult triggers (reasons to page the LRT)', ['Trigger', 'Urgency', 'Rules'],
      (a.consult_triggers || []).map((r) => [fmt.label(r.code ?? r.recommendation ?? r.id), fmt.label(r.urgency), (r.rules || []).join(', ')]), { id: 'evaluation-triggers', empty: 'No consult trigger: no page.' })));

  main.append(section('cards', `The card${cards.length === 1 ? '' : 's'} as shown`,
    ev.role === 'shadow' ? h('p', { class: 'note' }, 'A shadow evaluation is never shown: these cards are what it would have answered.') : null,
    cards.length ? h('div', { class: 'cards', 'data-figure': 'evaluation.cards', 'data-count': cards.length }, cards.map(card)) : h('p', { 'data-figure': 'evaluation.cards', 'data-count': 0 }, 'No card was returned.')));

  main.append(section('explanations', 'Why: explanations',
    (a.explanations || []).length ? (a.explanations || []).map(explanation) : h('p', {}, 'No explanation stored.')));

  const feedback = ev.feedback || [];
  main.append(section('feedback', 'Feedback',
    table('Feedback from the EHR on these cards', ['Card', 'Outcome', 'When', 'Override reason', 'Accepted suggestions'],
      feedback.map((f) => [f.card_uuid, f.outcome, fmt.time(f.outcome_timestamp),
        f.override_reason ? (f.override_reason.reason?.display || f.override_reason.reason?.code || '') + (f.override_reason.userComment ? ` – “${f.override_reason.userComment}”` : '') : '–',
        f.accepted_suggestions ? f.accepted_suggestions.map((s) => s.id).join(', ') : '–']),
      { id: 'evaluation-feedback', empty: 'No feedback received.' })));

  const page = ev.page;
  main.append(section('page', 'Page to the Lung Rescue Team',
    page
      ? dl([
        ['State', page.state, 'page.state'],
        ['Reason', fmt.label(page.reason), 'page.reason'],
        ['Urgency', fmt.label(page.urgency), 'page.urgency'],
        ['Created', fmt.time(page.created_at), 'page.created_at'],
        ['Delivered', fmt.time(page.delivered_at), 'page.delivered_at'],
        ['Acknowledged', page.acknowledged_at ? `${fmt.time(page.acknowledged_at)}${page.acknowledged_by ? ` by ${page.acknowledged_by}` : ''}` : 'not yet', 'page.acknowledged'],
      ])
      : h('p', { 'data-figure': 'page.state' }, 'No page was sent for this evaluation.')));

  const dq = a.data_quality || [];
  main.append(section('evaluation-data-quality', 'Data-quality items',
    dq.length ? h('ul', {}, dq.map((d) => h('li', {}, d))) : h('p', {}, 'None.')));
  document.title = `Evaluation ${ev.id} · LRT quality dashboard`;
  main.setAttribute('data-ready', 'evaluation');
}
