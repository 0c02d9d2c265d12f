// Applying for access and the curator's desk in headless Chromium (Debian's, driven by
// playwright-core from tests/e2e/ohif/node_modules): a researcher fills in and submits a
// data access request, the committee (an admin) approves it, and a curator opens the
// quarantine, looks at a held instance's pixels and releases it, then finds the release
// in the audit trail. Screenshots go to the output folder.
//
//   node check.mjs '{"base": "http://127.0.0.1:8042", "outDir": "...", "curatorToken": "...",
//                    "researcherToken": "...", "adminToken": "...", "entry": "<quarantine id>",
//                    "executablePath": "/usr/bin/chromium"}'
//
// Prints one JSON object: {steps: [{name, ok, detail}], screenshots, consoleErrors,
// failedRequests}.
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('../ohif/node_modules/playwright-core');

const opts = JSON.parse(process.argv[2]);
const result = { steps: [], screenshots: [], consoleErrors: [], failedRequests: [], clientErrors: [] };

async function step(name, fn) {
  try {
    const detail = await fn();
    result.steps.push({ name, ok: true, detail: detail ?? null });
  } catch (err) {
    result.steps.push({ name, ok: false, detail: String((err && err.stack) || err) });
  }
}

async function shot(page, name) {
  const file = path.join(opts.outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

// Every form control has a name a screen reader reads; every image has alt text.
async function accessibility(page) {
  return page.evaluate(() => {
    const controls = 'input:not([type=hidden]), select, textarea, button';
    const unlabelled = [...document.querySelectorAll(controls)]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 120));
    const noAlt = [...document.querySelectorAll('img')].filter((i) => !i.getAttribute('alt'))
      .map((i) => i.getAttribute('src'));
    return { unlabelled, noAlt };
  });
}

// The held pixels as the browser decoded them: size, spread and dark/bright counts.
async function pixels(page, selector) {
  await page.waitForFunction((sel) => {
    const img = document.querySelector(sel);
    return img && img.complete && img.naturalWidth > 0;
  }, selector);
  return page.$eval(selector, (img) => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let min = 255; let max = 0; let bright = 0;
    for (let i = 0; i < data.length; i += 4) {
      min = Math.min(min, data[i]); max = Math.max(max, data[i]);
      if (data[i] > 200) bright += 1;
    }
    const box = img.getBoundingClientRect();
    return { width: img.naturalWidth, height: img.naturalHeight, min, max, bright,
      shownWidth: Math.round(box.width), shownHeight: Math.round(box.height) };
  });
}

async function signIn(page, token) {
  // Straight to the access requests (a researcher's licence may hold no clinical data,
  // which the overview needs).
  await page.goto(`${opts.base}/ui/requests`);
  await page.waitForURL(/\/ui\/login/);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${opts.base}/ui/requests`);
}

async function session(browser, who, token, fn) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(opts.timeoutMs ?? 30000);
  page.on('console', (msg) => { if (msg.type() === 'error') result.consoleErrors.push(`${who}: ${msg.text()}`); });
  page.on('pageerror', (err) => result.consoleErrors.push(`${who}: ${err.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500) result.failedRequests.push(`${who}: ${r.status()} ${r.url()}`);
    else if (r.status() >= 400) result.clientErrors.push(`${who}: ${r.status()} ${r.url()}`);
  });
  try {
    await step(`${who}: sign in`, () => signIn(page, token));
    await fn(page);
  } finally {
    await context.close();
  }
}

const browser = await chromium.launch({ executablePath: opts.executablePath, headless: true,
  args: ['--no-sandbox'] });
let requestUrl = null;
try {
  await session(browser, 'researcher', opts.researcherToken, async (page) => {
    await step('researcher: apply for access (keyboard and labels)', async () => {
      await page.getByRole('link', { name: 'Apply for access' }).click();
      await page.waitForURL(/\/ui\/requests\/new/);
      const a11y = await accessibility(page);
      await page.getByLabel('Proposed study (title)').fill('Recall prediction from prior mammograms');
      await page.getByLabel('Intended use, in technical terms').fill(
        'Train and validate a convolutional network on FFDM priors to predict recall.');
      await page.getByLabel('Intended use, in lay terms').fill(
        'Teach a computer to notice early signs of cancer on earlier screening images.');
      // Checkboxes by their labels, ticked from the keyboard.
      await page.getByLabel('2D mammograms (FFDM for presentation)').focus();
      await page.keyboard.press('Space');
      await page.getByLabel('Clinical, pathology and outcome data').check();
      await page.getByLabel('Expected benefit to patients').fill('Fewer missed cancers, fewer needless recalls.');
      await page.getByLabel('Cohort (optional)').selectOption({ index: 1 });
      await shot(page, 'researcher-request-form');
      await page.getByRole('button', { name: 'Submit the application' }).click();
      await page.waitForURL(/\/ui\/requests\/\d+\?done=submitted/);
      requestUrl = page.url().split('?')[0];
      const state = (await page.locator('#request-state').innerText()).trim();
      const status = (await page.getByRole('status').innerText()).trim();
      await shot(page, 'researcher-request-submitted');
      return { a11y, state, status, url: requestUrl };
    });
  });

  await session(browser, 'admin', opts.adminToken, async (page) => {
    await step('committee: queue and approval', async () => {
      await page.getByRole('link', { name: 'Access requests' }).click();
      const waiting = await page.locator('section', { has: page.locator('#waiting-title') }).innerText();
      await shot(page, 'committee-queue');
      await page.getByRole('link', { name: 'Recall prediction from prior mammograms' }).click();
      await page.getByLabel('Approve', { exact: true }).check();
      await page.getByLabel('Reason (the applicant sees it)').fill('A sound plan with clear patient benefit.');
      await page.getByRole('button', { name: 'Record the decision' }).click();
      await page.waitForURL(/done=decided/);
      const state = (await page.locator('#request-state').innerText()).trim();
      const history = await page.locator('ol.history').innerText();
      await shot(page, 'committee-decided');
      return { waiting, state, history };
    });
    await step('admin: licence and a new token shown once', async () => {
      await page.getByRole('link', { name: /^Open licence \d+$/ }).click();
      await page.waitForURL(/\/ui\/desk\/licences\/\d+/);
      const licence = (await page.locator('#licence-state').innerText()).trim();
      const licenceA11y = await accessibility(page);
      await shot(page, 'admin-licence');
      await page.getByRole('link', { name: 'Tokens' }).click();
      await page.getByLabel('Holder').selectOption('r2@lab.example');
      await page.getByLabel('Label').fill('laptop');
      await page.getByRole('button', { name: 'Issue the token' }).click();
      const secret = await page.getByLabel('Token', { exact: true }).inputValue();
      const tokensA11y = await accessibility(page);
      await shot(page, 'admin-token-issued');
      await page.getByRole('link', { name: 'Tokens' }).click();
      const again = (await page.content()).includes(secret);
      return { licence, licenceA11y, tokensA11y, prefix: secret.slice(0, 12),
        secretLength: secret.length, shownAgain: again };
    });
  });

  await session(browser, 'curator', opts.curatorToken, async (page) => {
    await step('curator: quarantine list', async () => {
      await page.getByRole('link', { name: 'Quarantine' }).click();
      await page.waitForURL(/\/ui\/desk\/quarantine$/);
      const rows = await page.locator('tbody tr').count();
      await shot(page, 'curator-quarantine');
      return { rows, text: await page.locator('main').innerText() };
    });
    await step('curator: held pixels', async () => {
      await page.locator(`a[href="/ui/desk/quarantine/${opts.entry}"]`).click();
      await page.waitForURL(new RegExp(`/ui/desk/quarantine/${opts.entry}$`));
      const seen = await pixels(page, '#held-pixels');
      const reason = (await page.locator('#hold-reason').innerText()).trim();
      const summary = await page.locator('dl.facts').innerText();
      const a11y = await accessibility(page);
      await shot(page, 'curator-quarantine-entry');
      return { seen, reason, summary, a11y };
    });
    await step('curator: release', async () => {
      await page.getByRole('button', { name: 'Release into the archive' }).click();
      await page.waitForURL(/\/ui\/desk\/quarantine\?done=released/);
      const status = (await page.getByRole('status').innerText()).trim();
      const listed = await page.locator(`a[href="/ui/desk/quarantine/${opts.entry}"]`).count();
      await shot(page, 'curator-released');
      return { status, listed };
    });
    await step('curator: audit trail', async () => {
      await page.getByRole('link', { name: 'Audit' }).click();
      await page.getByLabel('Resource contains').fill(opts.entry);
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/resource=/);
      const rows = await page.locator('table.audit tbody').innerText();
      const a11y = await accessibility(page);
      await shot(page, 'curator-audit');
      return { rows, a11y };
    });
  });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
