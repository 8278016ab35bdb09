// The quality dashboard in a real browser (headless Debian Chromium driven by playwright-core),
// run by tests/dashboard_browser.rs against a running `lrt serve` seeded with real hook calls.
//
// Environment: LRT_BASE (the service), LRT_AUTH_HEADER / LRT_AUTH_VALUE (the identity-aware
// proxy's assertion, added to every request as the proxy would), LRT_QUERY (from, to,
// interval), LRT_CARD_LINK (the "Open this LRT evaluation" link of a card the service answered),
// LRT_SCREENSHOTS (folder), CHROMIUM (default /usr/bin/chromium).
//
// It checks the figures the page shows against the API's JSON, the shadow-disagreement link and
// the card link to the evaluation view and what that view shows, that nothing is requested from
// another origin, that no console error (a CSP violation included) occurs, some basic
// accessibility (captions, chart titles, labels, the skip link is the first Tab stop), and saves
// screenshots. Any difference: exit status 1, with every difference listed.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.LRT_BASE;
const query = process.env.LRT_QUERY || '';
const shots = process.env.LRT_SCREENSHOTS || 'screenshots';
const cardLink = process.env.LRT_CARD_LINK;
if (!base || !cardLink) {
  console.error('LRT_BASE and LRT_CARD_LINK are required');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const problems = [];
function expect(ok, message) {
  if (!ok) problems.push(message);
  return ok;
}
function same(actual, expected, what) {
  return expect(actual === expected, `${what}: the page shows ${JSON.stringify(actual)}, the API says ${JSON.stringify(expected)}`);
}
const pct = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)} %`);
const int = (n) => (n === null || n === undefined ? '–' : String(n));
const label = (s) => (s === null || s === undefined || s === '' ? '(none)' : String(s).replaceAll('_', ' '));

// A fresh profile per run (playwright passes it as --user-data-dir).
const profile = mkdtempSync(join(tmpdir(), 'lrt-chromium-'));
const headers = {};
if (process.env.LRT_AUTH_HEADER) headers[process.env.LRT_AUTH_HEADER] = process.env.LRT_AUTH_VALUE || '';
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  extraHTTPHeaders: headers,
  viewport: { width: 1280, height: 900 },
  deviceScaleFactor: 1,
});
const page = await context.newPage();
const origin = new URL(base).origin;
page.on('request', (r) => {
  const u = new URL(r.url());
  if (u.protocol.startsWith('http') && u.origin !== origin) problems.push(`a request left the service: ${u.origin}`);
});
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

async function api(path) {
  const r = await context.request.get(`${base}${path}`, { headers: { Accept: 'application/json' } });
  if (!r.ok()) throw new Error(`${path}: HTTP ${r.status()}`);
  return r.json();
}
async function text(selector) {
  const el = await page.$(selector);
  if (!expect(el !== null, `nothing on the page matches ${selector}`)) return null;
  return (await el.textContent()).trim();
}
async function ready(view) {
  await page.waitForSelector('main[data-ready]', { timeout: 20000 });
  const got = await page.getAttribute('main', 'data-ready');
  if (got === 'error') problems.push(`the page shows an error: ${await text('.notice.error')}`);
  return same(got, view, 'the view');
}
// The cells of a table's body, row by row.
async function cells(id) {
  return page.$$eval(`#${id} tbody tr`, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent.trim())));
}

try {
  // --- The overview ---------------------------------------------------------------------
  const response = await page.goto(`${base}/dashboard?${query}`);
  const csp = response.headers()['content-security-policy'] || '';
  expect(csp.includes("default-src 'self'") && csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `weak or missing CSP: ${csp}`);
  same(response.headers()['cache-control'], 'no-store', 'Cache-Control of the page');
  await ready('overview');

  const q = new URLSearchParams(query);
  const apiQuery = new URLSearchParams({ from: `${q.get('from')}T00:00:00Z`, to: `${q.get('to')}T00:00:00Z`, interval: q.get('interval') || 'day' });
  const [alerts, feedback, consults, shadow, dq, patients] = await Promise.all([
    api(`/api/v1/quality/alerts?${apiQuery}`),
    api(`/api/v1/quality/feedback?${apiQuery}`),
    api(`/api/v1/quality/consults?${apiQuery}`),
    api(`/api/v1/quality/shadow?${apiQuery}&limit=50`),
    api(`/api/v1/quality/data-quality?${apiQuery}`),
    api(`/api/v1/quality/patients?${new URLSearchParams({ ...Object.fromEntries(apiQuery), interval: 'month' })}`),
  ]);
  // The seeded data must be there, or the comparisons below prove nothing.
  expect(alerts.totals.calls > 0 && alerts.totals.cards > 0, 'the API counts no call or card: nothing seeded in the window');
  expect(feedback.totals.accepted + feedback.totals.overridden > 0, 'the API counts no feedback');
  expect(consults.totals.pages > 0, 'the API counts no page');
  expect(shadow.disagreements.length > 0, 'the API lists no shadow disagreement');

  same(await text('[data-figure="alerts.calls"]'), int(alerts.totals.calls), 'hook calls');
  same(await text('[data-figure="alerts.cards"]'), int(alerts.totals.cards), 'cards shown');
  same(await text('[data-figure="alerts.card_share"]'), pct(alerts.totals.card_share), 'share of calls with a card');
  same(await text('[data-figure="alerts.errors"]'), int(alerts.totals.errors), 'error answers');
  same(await text('[data-figure="feedback.accepted"]'), int(feedback.totals.accepted), 'accepted cards');
  same(await text('[data-figure="feedback.overridden"]'), int(feedback.totals.overridden), 'overridden cards');
  same(await text('[data-figure="feedback.no_feedback"]'), int(feedback.totals.no_feedback), 'cards without feedback');
  same(await text('[data-figure="feedback.acceptance_rate"]'), pct(feedback.totals.acceptance_rate), 'acceptance rate');
  same(await text('[data-figure="consults.pages"]'), int(consults.totals.pages), 'pages');
  same(await text('[data-figure="consults.acknowledged"]'), int(consults.totals.acknowledged), 'acknowledged pages');
  same(await text('[data-figure="consults.dead_lettered"]'), int(consults.totals.dead_lettered), 'dead-lettered pages');
  same(await text('[data-figure="shadow.pairs"]'), int(shadow.pairs), 'shadow pairs');
  same(await text('[data-figure="shadow.all_agree"]'), int(shadow.all_agree), 'shadow pairs in full agreement');
  same(await text('[data-figure="data_quality.evaluations"]'), int(dq.evaluations), 'evaluations (data quality)');

  const series = await cells('alerts-series');
  same(series.length, alerts.series.length, 'rows of the alerts-over-time table');
  alerts.series.forEach((b, i) => {
    if (series[i]) same(series[i].slice(1).join('|'), [b.calls, b.calls_with_cards, b.cards, b.errors].join('|'), `alerts of ${b.start.slice(0, 10)}`);
  });
  const indicators = await cells('alerts-indicators');
  same(JSON.stringify(indicators), JSON.stringify(alerts.by_indicator.map((i) => [label(i.indicator), String(i.cards)])), 'cards by indicator');
  const reasons = await cells('feedback-reasons');
  same(JSON.stringify(reasons.map((r) => r[1])), JSON.stringify(feedback.override_reasons.map((r) => String(r.overrides))), 'override reasons');
  const urgency = await cells('consults-urgency');
  same(JSON.stringify(urgency), JSON.stringify(consults.by_urgency.map((u) => [label(u.urgency), String(u.pages)])), 'pages by urgency');
  const categories = await cells('patients-categories');
  same(JSON.stringify(categories), JSON.stringify(patients.by_category.map((c) => [label(c.category), String(c.patients)])), 'patients by ECMO category');
  const items = await cells('data-quality-items');
  same(items.length === 1 && dq.items.length === 0 ? 0 : items.length, dq.items.length, 'rows of data-quality items');
  const disagreements = await cells('shadow-disagreements');
  same(disagreements.length, shadow.disagreements.length, 'rows of shadow disagreements');

  // Basic accessibility: captions, chart titles, labelled inputs, the skip link first.
  const a11y = await page.evaluate(() => ({
    tablesWithoutCaption: [...document.querySelectorAll('table')].filter((t) => !t.querySelector('caption')?.textContent.trim()).length,
    chartsWithoutTitle: [...document.querySelectorAll('svg.chart')].filter((s) => !s.querySelector('title')?.textContent.trim() || s.getAttribute('role') !== 'img').length,
    unlabelled: [...document.querySelectorAll('input, select')].filter((i) => !document.querySelector(`label[for="${i.id}"]`)).length,
    emptyLinks: [...document.querySelectorAll('a')].filter((a) => !a.textContent.trim()).length,
    headingsStart: document.querySelector('h1') !== null,
    lang: document.documentElement.lang,
  }));
  same(a11y.tablesWithoutCaption, 0, 'tables without a caption');
  same(a11y.chartsWithoutTitle, 0, 'charts without role=img and a title');
  same(a11y.unlabelled, 0, 'form controls without a label');
  same(a11y.emptyLinks, 0, 'links without text');
  same(a11y.lang, 'en', 'the document language');
  await page.screenshot({ path: join(shots, 'dashboard-overview.png'), fullPage: true });
  await page.screenshot({ path: join(shots, 'dashboard-overview-top.png') });
  await page.keyboard.press('Tab');
  same(await page.evaluate(() => document.activeElement?.className), 'skip', 'the first Tab stop');

  // The filters: a GET form; changing the interval reloads with it.
  await page.selectOption('#interval', 'week');
  await Promise.all([page.waitForURL(/interval=week/), page.click('form.filters button[type=submit]')]);
  await ready('overview');
  const weekly = await api(`/api/v1/quality/alerts?${new URLSearchParams({ ...Object.fromEntries(apiQuery), interval: 'week' })}`);
  same((await cells('alerts-series')).length, weekly.series.length, 'rows of the weekly alerts table');
  await page.goBack();
  await ready('overview');

  // --- A shadow disagreement, clicked through to the active evaluation ------------------
  const first = shadow.disagreements[0];
  await Promise.all([page.waitForURL(/\/dashboard\/evaluations\//), page.click(`#shadow-disagreements a[href="/dashboard/evaluations/${first.active.evaluation_id}"]`)]);
  await ready('evaluation');
  same(await text('[data-figure="evaluation.id"]'), first.active.evaluation_id, 'the evaluation opened from the disagreement');
  same(await text('[data-figure="evaluation.ecmo_category"]'), label(first.active.category), 'its ECMO category');

  // --- The card's link, as the EHR shows it --------------------------------------------
  expect(new URL(cardLink).pathname.startsWith('/dashboard/evaluations/'), `the card link is not a dashboard page: ${cardLink}`);
  const id = new URL(cardLink).pathname.split('/').pop();
  await page.goto(cardLink);
  await ready('evaluation');
  const ev = await api(`/api/v1/evaluations/${id}`);
  same(await text('[data-figure="evaluation.id"]'), ev.id, 'the evaluation of the card link');
  same(await text('[data-figure="evaluation.ecmo_category"]'), label(ev.ecmo_category), 'ECMO category');
  same(await text('[data-figure="evaluation.pf_ratio"]'), ev.pf_ratio === null ? '–' : Number(ev.pf_ratio).toFixed(0), 'P/F ratio');
  const cards = ev.response.cards || [];
  same(Number(await page.getAttribute('[data-figure="evaluation.cards"]', 'data-count')), cards.length, 'cards shown');
  for (const [i, c] of cards.entries()) same(await text(`[data-figure="card.${i}.summary"]`), c.summary, `summary of card ${i}`);
  const explanations = await page.$$eval('#explanations article.explanation', (a) => a.length);
  same(explanations, (ev.assessment.explanations || []).length, 'explanations');
  const criteria = await page.$$eval('#explanations table tbody tr', (r) => r.length);
  same(criteria, (ev.assessment.explanations || []).reduce((n, e) => n + (e.criteria || []).length, 0), 'criteria rows');
  const feedbackRows = await cells('evaluation-feedback');
  same(ev.feedback.length === 0 ? 0 : feedbackRows.length, ev.feedback.length, 'feedback rows');
  expect(ev.feedback.length > 0, 'the card of the link has no feedback: seed it');
  same(await text('[data-figure="page.state"]'), ev.page ? ev.page.state : 'No page was sent for this evaluation.', 'page state');
  expect(ev.page !== null, 'the evaluation of the link has no page: seed one');
  await page.screenshot({ path: join(shots, 'dashboard-evaluation.png'), fullPage: true });
  await page.screenshot({ path: join(shots, 'dashboard-evaluation-top.png') });
  await page.locator('#feedback').screenshot({ path: join(shots, 'dashboard-evaluation-feedback.png') });
} catch (e) {
  problems.push(`the run failed: ${e.stack || e}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

if (problems.length) {
  console.error(`${problems.length} problem(s):\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log(`dashboard checked in Chromium; screenshots in ${shots}`);
