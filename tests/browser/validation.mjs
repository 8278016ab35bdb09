// The silent-mode validation view in a real browser (headless Debian Chromium driven by
// playwright-core), run by tests/dashboard_browser.rs after dashboard.mjs, on the same seeded
// `lrt serve`.
//
// Environment: LRT_BASE, LRT_AUTH_HEADER / LRT_AUTH_VALUE (the identity-aware proxy's
// assertion), LRT_SCREENSHOTS, CHROMIUM, and the files the Rust test wrote:
// LRT_VALIDATION_CSV / LRT_VALIDATION_EXPECTED (adjudications and the API's JSON answer for them
// with LRT_VALIDATION_WINDOW), LRT_VALIDATION_ONE_CSV / LRT_VALIDATION_ONE_EXPECTED (a file
// with no adjudicated negative), LRT_VALIDATION_BAD_CSV / LRT_VALIDATION_BAD_MESSAGE (a bad
// file and the API's 400 diagnostic).
//
// It opens the view from the overview's navigation, uploads each file through the form, and
// compares every figure shown with the API's answer under the formatting rules below (the page's
// `show` in services/lrt-server/dashboard/validation.js); follows a discordant row to its
// evaluation; checks the bad file's error names its line, is an alert, and keeps the form; and
// saves dashboard-validation.png. Any difference: exit status 1, every difference listed.

import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return v;
};
const base = env('LRT_BASE');
const shots = process.env.LRT_SCREENSHOTS || 'screenshots';
const window = env('LRT_VALIDATION_WINDOW');
const files = {
  mixed: env('LRT_VALIDATION_CSV'),
  one: env('LRT_VALIDATION_ONE_CSV'),
  bad: env('LRT_VALIDATION_BAD_CSV'),
};
const expected = {
  mixed: JSON.parse(readFileSync(env('LRT_VALIDATION_EXPECTED'), 'utf8')),
  one: JSON.parse(readFileSync(env('LRT_VALIDATION_ONE_EXPECTED'), 'utf8')),
  bad: readFileSync(env('LRT_VALIDATION_BAD_MESSAGE'), 'utf8').trim(),
};
mkdirSync(shots, { recursive: true });

const problems = [];
function expect(ok, message) {
  if (!ok) problems.push(message);
  return ok;
}
function same(actual, wanted, what) {
  return expect(actual === wanted, `${what}: the page shows ${JSON.stringify(actual)}, the API says ${JSON.stringify(wanted)}`);
}

// The formatting rules (the page's `show`, `fmt.time` and `fmt.label`).
const show = {
  count: (n) => String(n),
  ratio: (p) => `${p.numerator}/${p.denominator}`,
  share: (x) => (x === null ? 'undefined' : `${(x * 100).toFixed(1)} %`),
  ci: (ci) => (ci === null ? 'undefined' : `${(ci.low * 100).toFixed(1)}–${(ci.high * 100).toFixed(1)} %`),
  hours: (x) => (x === null ? '–' : `${x.toFixed(1)} h`),
  spread: (l) => {
    if (l.q1 !== null && l.q3 !== null) return `IQR ${show.hours(l.q1)} to ${show.hours(l.q3)}`;
    if (l.min !== null && l.max !== null) return `range ${show.hours(l.min)} to ${show.hours(l.max)}`;
    return '–';
  },
  yesNo: (b) => (b ? 'yes' : 'no'),
  cell: (c) => (c ? c.toUpperCase() : '–'),
  time: (iso) => iso.replace('T', ' ').replace(/\.\d+/, '').replace('+00:00', 'Z'),
  label: (s) => (s === null || s === '' ? '(none)' : String(s).replaceAll('_', ' ')),
};
const MEASURES = [['sensitivity', 'Sensitivity'], ['specificity', 'Specificity'], ['ppv', 'PPV'], ['npv', 'NPV']];

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
// The bad file's 400 is logged by Chromium as a failed resource load: expected, not a problem.
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 400/.test(m.text())) problems.push(`console error: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

async function text(selector) {
  const el = await page.$(selector);
  if (!expect(el !== null, `nothing on the page matches ${selector}`)) return null;
  return (await el.textContent()).trim();
}
async function ready(view) {
  await page.waitForSelector('main[data-ready]', { timeout: 20000 });
  return same(await page.getAttribute('main', 'data-ready'), view, 'the view');
}
async function cells(id) {
  return page.$$eval(`#${id} tbody tr`, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent.trim())));
}
// A table's rows against the expected ones (an empty table shows one row: its message).
async function rowsOf(id, wanted, what) {
  const got = await cells(id);
  if (wanted.length === 0) return same(got.length === 1 && got[0].length === 1 ? 0 : got.length, 0, `${what}: rows`);
  same(got.length, wanted.length, `${what}: rows`);
  wanted.forEach((row, i) => same(JSON.stringify(got[i]), JSON.stringify(row), `${what}, row ${i + 1}`));
}

// Uploads `file` through the form and waits for the answer: 'results' or 'error'.
async function upload(file) {
  await page.evaluate(() => document.querySelector('main').removeAttribute('data-validation'));
  await page.setInputFiles('#adjudications', file);
  await page.selectOption('#window', window);
  await page.click('#validation-form button[type=submit]');
  await page.waitForSelector('main[data-validation="results"], main[data-validation="error"]', { timeout: 20000 });
  return page.getAttribute('main', 'data-validation');
}

// Every figure of the results against the API's answer `v`.
async function compare(v, what) {
  same(await text('[data-figure="validation.adjudications"]'), show.count(v.adjudications), `${what}: adjudications`);
  same(await text('[data-figure="validation.evaluated"]'), show.count(v.evaluated), `${what}: evaluated`);
  same(await text('[data-figure="validation.not_evaluated"]'), show.count(v.not_evaluated.count), `${what}: not evaluated`);
  same(await text('[data-figure="validation.insufficient_data"]'), show.count(v.insufficient_data.count), `${what}: insufficient data`);
  same(await text('[data-figure="validation.agreement"]'), show.share(v.agreement.exact.value), `${what}: exact agreement`);
  for (const key of ['screen', 'consult']) {
    const m = v[key];
    for (const cell of ['tp', 'fp', 'fn', 'tn']) same(await text(`[data-figure="${key}.${cell}"]`), show.count(m[cell]), `${what}: ${key} ${cell.toUpperCase()}`);
    await rowsOf(`${key}-measures`, MEASURES.map(([k, label]) => [label, show.ratio(m[k]), show.share(m[k].value), show.ci(m[k].ci95)]), `${what}: ${key} measures`);
    const l = m.lead_time_hours;
    await rowsOf(`${key}-lead`, [['median', show.hours(l.median)], ['spread', show.spread(l)], ['true positives timed (n)', show.count(l.n)]], `${what}: ${key} lead time`);
  }
  const adjudicated = [...new Set(v.agreement.matrix.map((c) => c.adjudicated))];
  const system = [...new Set(v.agreement.matrix.map((c) => c.system))].sort();
  const count = (a, s) => v.agreement.matrix.find((c) => c.adjudicated === a && c.system === s)?.rows ?? 0;
  same(JSON.stringify(await page.$$eval('#validation-matrix thead th', (t) => t.map((c) => c.textContent.trim()).slice(1))),
    JSON.stringify(system.map(show.label)), `${what}: confusion matrix columns`);
  await rowsOf('validation-matrix', adjudicated.map((a) => [show.label(a), ...system.map((s) => show.count(count(a, s)))]), `${what}: confusion matrix`);
  const wrong = (c) => c === 'fp' || c === 'fn';
  const discordant = v.rows.filter((r) => r.system && (wrong(r.screen) || wrong(r.consult)));
  await rowsOf('validation-discordant', discordant.map((r) => [r.patient, show.time(r.time), show.label(r.adjudicated_category), show.yesNo(r.consult_warranted),
    show.label(r.system.category), r.system.consult_triggers.map(show.label).join(', ') || 'none', show.time(r.system.at),
    show.cell(r.screen), show.cell(r.consult), r.system.evaluation_id ? 'evaluation' : '–']), `${what}: discordant rows`);
  const listed = (set) => set.rows.map((r) => [r.patient, show.time(r.time), show.label(r.adjudicated_category), show.yesNo(r.consult_warranted)]);
  await rowsOf('validation-not-evaluated', listed(v.not_evaluated), `${what}: not evaluated rows`);
  await rowsOf('validation-insufficient', listed(v.insufficient_data), `${what}: insufficient-data rows`);
  return discordant;
}

try {
  // --- From the overview's navigation to the view ------------------------------------------
  await page.goto(`${base}/dashboard`);
  await ready('overview');
  await Promise.all([page.waitForURL(/\/dashboard\/validation$/), page.click('#validation-link')]);
  await ready('validation');
  same(await page.getAttribute('#adjudications', 'accept'), '.csv,text/csv', 'the file input accepts');
  same(JSON.stringify(await page.$$eval('#window option', (o) => o.map((x) => x.value))), JSON.stringify(['6h', '12h', '24h', '48h', '72h']), 'the windows offered');
  same(await page.inputValue('#window'), '24h', 'the default window');
  const a11y = await page.evaluate(() => ({
    unlabelled: [...document.querySelectorAll('input, select')].filter((i) => !document.querySelector(`label[for="${i.id}"]`)).length,
    readme: document.querySelector('.explain')?.textContent.includes('README, section "Silent-mode validation"'),
  }));
  same(a11y.unlabelled, 0, 'form controls without a label');
  same(a11y.readme, true, 'the explanation points to the README section');

  // --- The mixed file ----------------------------------------------------------------------
  const v = expected.mixed;
  same(await upload(files.mixed), 'results', 'the answer to the adjudication file');
  same(await page.evaluate(() => document.activeElement?.id), 'validation-results-title', 'focus after the results are shown');
  const discordant = await compare(v, 'mixed file');
  const tables = await page.evaluate(() => [...document.querySelectorAll('#validation-results table')].filter((t) => !t.querySelector('caption')?.textContent.trim() || !t.querySelector('th[scope]')).length);
  same(tables, 0, 'result tables without a caption or header cells');
  await page.screenshot({ path: join(shots, 'dashboard-validation.png'), fullPage: true });
  await page.screenshot({ path: join(shots, 'dashboard-validation-top.png') });
  await page.locator('#validation-results .two').screenshot({ path: join(shots, 'dashboard-validation-tables.png') });

  // A discordant row, clicked through to its evaluation.
  const linked = discordant.find((r) => r.system.evaluation_id);
  if (expect(linked !== undefined, 'no discordant row carries an evaluation id')) {
    const id = linked.system.evaluation_id;
    await Promise.all([page.waitForURL(new RegExp(`/dashboard/evaluations/${id}$`)), page.click(`#validation-discordant a[href="/dashboard/evaluations/${id}"]`)]);
    await ready('evaluation');
    same(await text('[data-figure="evaluation.id"]'), id, 'the evaluation opened from the discordant row');
    same(await text('[data-figure="evaluation.ecmo_category"]'), show.label(linked.system.category), 'its ECMO category');
    await page.goBack();
    await ready('validation');
  }

  // --- No adjudicated negative: specificity and NPV undefined ------------------------------
  same(await upload(files.one), 'results', 'the answer to the one-row file');
  await compare(expected.one, 'one-row file');
  const specificity = (await cells('screen-measures'))[1] || [];
  same(specificity[2], 'undefined', 'an undefined specificity');

  // --- A bad file: the error names the line, the form is kept ------------------------------
  same(await upload(files.bad), 'error', 'the answer to the bad file');
  const alert = await text('[role="alert"]');
  expect(alert !== null && alert.includes(expected.bad), `the error shown (${alert}) does not carry the API's message (${expected.bad})`);
  expect(alert !== null && alert.includes('line 3'), `the error shown does not name line 3: ${alert}`);
  same(await page.$('#validation-results'), null, 'results left on the page after an error');
  same(await page.$eval('#adjudications', (i) => i.files.length), 1, 'the chosen file after the error');
  same(await page.inputValue('#window'), window, 'the window after the error');
  await page.screenshot({ path: join(shots, 'dashboard-validation-error.png') });
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
console.log(`validation view checked in Chromium; screenshots in ${shots}`);
