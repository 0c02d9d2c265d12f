// The web dashboard in headless Chromium (Debian's, driven by playwright-core from
// tests/e2e/ohif/node_modules): signs in as a curator and as a researcher, builds and
// saves a cohort, opens a client's timeline and looks for the marks drawn on its
// thumbnails, and keeps every page's text for the caller to check. Screenshots go to
// the output folder.
//
//   node check.mjs '{"base": "http://127.0.0.1:8042", "outDir": "...", "curatorToken": "...",
//                    "researcherToken": "...", "markedClient": "...", "memberClient": "...",
//                    "outsideClient": "...", "executablePath": "/usr/bin/chromium"}'
//
// Prints one JSON object: {steps: [{name, ok, detail}], pages: {name: text}, screenshots,
// consoleErrors, failedRequests}.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('../ohif/node_modules/playwright-core');

const opts = JSON.parse(process.argv[2]);
const result = { steps: [], pages: {}, screenshots: [], consoleErrors: [], failedRequests: [] };

async function step(name, fn) {
  try {
    const detail = await fn();
    result.steps.push({ name, ok: true, detail: detail ?? null });
  } catch (err) {
    result.steps.push({ name, ok: false, detail: String(err && err.stack || err) });
  }
}

async function shot(page, name) {
  const file = path.join(opts.outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

async function keep(page, name) {
  // The text a person sees and the markup behind it (attributes, hidden inputs, links).
  result.pages[name] = (await page.innerText('body')) + '\n' + (await page.content());
}

// Red pixels of the mark outline (MARK_COLOUR 255,48,48, through JPEG) in an <img>.
async function redPixels(page, selector) {
  return page.$$eval(selector, (imgs) => imgs.map((img) => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] > 180 && data[i + 1] < 110 && data[i + 2] < 110) red += 1;
    }
    return { src: img.getAttribute('src'), width: img.naturalWidth, red };
  }));
}

async function imagesLoaded(page, selector) {
  // Thumbnails load lazily as they scroll into view: load them all now.
  await page.$$eval(selector, (imgs) => imgs.forEach((i) => { i.loading = 'eager'; }));
  await page.waitForFunction((sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, selector);
  return page.$$eval(selector, (imgs) => imgs.length);
}

async function signIn(page, token) {
  await page.goto(`${opts.base}/ui/`);
  await page.waitForURL(/\/ui\/login/);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${opts.base}/ui/`);
}

async function chartsDrawn(page) {
  await page.waitForFunction(() => {
    const cards = [...document.querySelectorAll('.chart-card')];
    return cards.length > 0 && cards.every((c) => c.dataset.ready === '1' || c.querySelector('.chart')?.textContent === 'No data.');
  });
  return page.$$eval('.chart-card h2', (hs) => hs.map((h) => h.textContent.trim()));
}

// Every form control has a name a screen reader reads; every image has alt text.
async function accessibility(page) {
  return page.evaluate(() => {
    const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, button')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 120));
    const noAlt = [...document.querySelectorAll('img')].filter((i) => !i.getAttribute('alt'))
      .map((i) => i.getAttribute('src'));
    return { unlabelled, noAlt, main: !!document.querySelector('main'), nav: !!document.querySelector('nav') };
  });
}

async function session(browser, who, token, fn) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(opts.timeoutMs ?? 30000);
  page.on('console', (msg) => { if (msg.type() === 'error') result.consoleErrors.push(`${who}: ${msg.text()}`); });
  page.on('pageerror', (err) => result.consoleErrors.push(`${who}: ${err.message}`));
  page.on('response', (r) => { if (r.status() >= 500) result.failedRequests.push(`${who}: ${r.status()} ${r.url()}`); });
  try {
    await step(`${who}: sign in`, () => signIn(page, token));
    await fn(page, context);
    await step(`${who}: sign out`, async () => {
      await page.goto(`${opts.base}/ui/`);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/ui\/login/);
      await page.goto(`${opts.base}/ui/`);
      await page.waitForURL(/\/ui\/login/);
      return page.url();
    });
  } finally {
    await context.close();
  }
}

async function main() {
  fs.mkdirSync(opts.outDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: opts.executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    result.browserVersion = browser.version();
    await session(browser, 'curator', opts.curatorToken, async (page) => {
      await step('curator: overview charts', async () => {
        const titles = await chartsDrawn(page);
        await keep(page, 'curator-overview');
        await shot(page, 'curator-overview');
        return { titles, a11y: await accessibility(page) };
      });
      await step('curator: chart downloads', async () => {
        const card = page.locator('#chart-2d');
        const got = {};
        for (const format of ['png', 'svg']) {
          const [download] = await Promise.all([
            page.waitForEvent('download'),
            card.getByRole('button', { name: format.toUpperCase() }).click(),
          ]);
          const file = path.join(opts.outDir, `chart-2d.${format}`);
          await download.saveAs(file);
          got[format] = fs.readFileSync(file).subarray(0, 8).toString('latin1');
        }
        return got;
      });
      await step('curator: keyboard reaches the skip link first', async () => {
        await page.goto(`${opts.base}/ui/`);
        await page.keyboard.press('Tab');
        return page.evaluate(() => document.activeElement.textContent.trim());
      });
      await step('curator: build a cohort', async () => {
        await page.goto(`${opts.base}/ui/cohorts`);
        await keep(page, 'curator-cohort-builder-all');
        const before = await page.locator('#cohort-counts strong').first().getAttribute('data-clients');
        const response = page.waitForResponse((r) => r.url().includes('/ui/cohorts/results') && r.url().includes('marked=true'));
        await page.getByRole('group', { name: 'Expert marks' }).getByLabel('marked', { exact: true }).check();
        await response;
        await page.waitForFunction((b) => {
          const s = document.querySelector('#cohort-counts strong');
          return s && s.getAttribute('data-clients') !== b;
        }, before);
        const after = await page.locator('#cohort-counts strong').first().getAttribute('data-clients');
        const thumbs = await imagesLoaded(page, '#results figure.thumb img');
        const red = await redPixels(page, '#results img[data-marks]');
        await keep(page, 'curator-cohort-builder');
        await shot(page, 'curator-cohort-builder');
        return { before, after, thumbs, red, a11y: await accessibility(page) };
      });
      await step('curator: save the cohort', async () => {
        await page.getByLabel('Name').fill('marked cases (e2e)');
        await page.getByLabel('Description').fill('saved from the dashboard');
        await page.getByRole('button', { name: 'Save cohort' }).click();
        await page.waitForURL(/\/ui\/cohorts\/\d+\?saved=1/);
        await keep(page, 'curator-saved-cohort');
        await shot(page, 'curator-saved-cohort');
        return { url: page.url(), heading: await page.locator('h1').innerText(),
          clients: await page.locator('dd[data-clients]').getAttribute('data-clients') };
      });
      await step('curator: client timeline with marks', async () => {
        await page.goto(`${opts.base}/ui/clients`);
        await page.getByLabel('Client ID').fill(opts.markedClient);
        await page.getByRole('button', { name: 'Open timeline' }).click();
        await page.waitForURL(/\/ui\/clients\/[^/?]+/);
        const thumbs = await imagesLoaded(page, 'figure.thumb img');
        const red = await redPixels(page, 'img[data-marks]');
        const ohif = await page.$$eval('a[href*="StudyInstanceUIDs"]', (as) => as.map((a) => a.href));
        await keep(page, 'curator-client');
        await shot(page, 'curator-client');
        return { thumbs, red, ohif: ohif.slice(0, 2), a11y: await accessibility(page) };
      });
    });
    await session(browser, 'researcher', opts.researcherToken, async (page) => {
      await step('researcher: overview charts', async () => {
        const titles = await chartsDrawn(page);
        await keep(page, 'researcher-overview');
        await shot(page, 'researcher-overview');
        return { titles };
      });
      await step('researcher: navigation', async () => {
        return page.$$eval('nav[aria-label="Main"] a', (as) => as.map((a) => a.textContent.trim()));
      });
      await step('researcher: saved cohorts', async () => {
        await page.goto(`${opts.base}/ui/cohorts/saved`);
        await keep(page, 'researcher-saved-cohorts');
        return page.$$eval('tbody th a', (as) => as.map((a) => a.textContent.trim()));
      });
      await step('researcher: cohort builder is not for researchers', async () => {
        const r = await page.goto(`${opts.base}/ui/cohorts`);
        await keep(page, 'researcher-cohort-builder');
        return r.status();
      });
      await step('researcher: member client timeline with marks', async () => {
        await page.goto(`${opts.base}/ui/clients/${encodeURIComponent(opts.memberClient)}`);
        const thumbs = await imagesLoaded(page, 'figure.thumb img');
        const red = await redPixels(page, 'img[data-marks]');
        const ohif = await page.$$eval('a[href*="StudyInstanceUIDs"]', (as) => as.map((a) => a.href));
        await keep(page, 'researcher-client');
        await shot(page, 'researcher-client');
        return { thumbs, red, ohif: ohif.slice(0, 2) };
      });
      await step('researcher: outside client is not found', async () => {
        const r = await page.goto(`${opts.base}/ui/clients/${encodeURIComponent(opts.outsideClient)}`);
        await keep(page, 'researcher-outside-client');
        await shot(page, 'researcher-outside-client');
        return r.status();
      });
    });
  } finally {
    await browser.close();
  }
}

const deadline = setTimeout(() => {
  result.steps.push({ name: 'deadline', ok: false, detail: 'the check ran out of time' });
  console.log(JSON.stringify(result));
  process.exit(2);
}, opts.deadlineMs ?? 240000);

main().then(() => {
  clearTimeout(deadline);
  console.log(JSON.stringify(result));
}).catch((err) => {
  clearTimeout(deadline);
  result.steps.push({ name: 'fatal', ok: false, detail: String(err && err.stack || err) });
  console.log(JSON.stringify(result));
  process.exit(1);
});
