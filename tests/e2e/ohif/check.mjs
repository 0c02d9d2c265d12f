// Drive the OHIF v3 viewer in headless Chromium against an omipacs archive.
//
// Usage: node check.mjs '<json options>' (written by tests/e2e/ohif_check.py, which also
// serves the viewer). Options:
//   ohifUrl         origin serving OHIF's dist/ with our app-config.js
//   archiveRoots    URL prefixes whose requests are recorded (the DICOMweb base URL)
//   outDir          where screenshots and result.json go
//   executablePath  Chromium binary (Debian's /usr/bin/chromium)
//   studies         [{uid, patientId, patientName, accession}] the study list must show
//                   ([] = check the page renders only)
//   openStudy       StudyInstanceUID to open in the viewer ('' = stop after the study list)
//   voiSeries       {description, voiLutFunction} of a series of that study whose images carry
//                   a VOI LUT Function (SIGMOID on mammograms), loaded into the viewport
//                   from its thumbnail; null to skip
//   timeoutMs       budget for each wait
//
// Writes outDir/result.json: {ok, error, steps, requests, console, viewport} and exits 0
// when every step passed, 1 otherwise. The verdict on the rendered image is the canvas's own
// pixels (the on-screen cornerstone canvas is a 2D canvas that the WebGL or CPU renderer
// draws into); tests/e2e/ohif_check.py double-checks the viewport screenshot with Pillow.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const started = Date.now();
const since = () => Date.now() - started;

const result = {
  ok: false,
  error: null,
  steps: [],
  requests: [],
  otherFailures: [],
  console: [],
  viewport: null,
  screenshots: {},
};

function writeResult() {
  fs.writeFileSync(path.join(opts.outDir, 'result.json'), JSON.stringify(result, null, 2));
}

async function step(name, fn) {
  const t0 = since();
  const entry = { name, ok: false, startMs: t0, ms: 0, detail: null };
  result.steps.push(entry);
  try {
    entry.detail = (await fn()) ?? null;
    entry.ok = true;
  } catch (error) {
    if (currentPage) {
      const file = `failed-${name.replace(/\W+/g, '-')}`;
      await shot(currentPage, file).catch(() => {});
    }
    throw new Error(`${name}: ${error?.message ?? error}`);
  } finally {
    entry.ms = since() - t0;
  }
  return entry.detail;
}

async function shot(page, name, target = page) {
  const file = path.join(opts.outDir, `${name}.png`);
  await target.screenshot({ path: file });
  result.screenshots[name] = file;
  return file;
}

let currentPage = null;

const isArchive = url => opts.archiveRoots.some(root => url.startsWith(root));

function record(page) {
  const byRequest = new Map();
  page.on('request', request => {
    if (!isArchive(request.url())) return;
    const entry = {
      t: since(),
      method: request.method(),
      url: request.url(),
      resourceType: request.resourceType(),
      requestHeaders: request.headers(),
      status: null,
      responseHeaders: null,
      failure: null,
      ms: null,
      bytes: null,
    };
    byRequest.set(request, entry);
    result.requests.push(entry);
  });
  page.on('response', async response => {
    const entry = byRequest.get(response.request());
    if (!entry) return;
    entry.status = response.status();
    entry.responseHeaders = response.headers();
    if (entry.status >= 400) {
      // What the archive said about it: the first thing to read when a request fails.
      entry.errorBody = await response.text().then(t => t.slice(0, 500)).catch(() => null);
    }
  });
  page.on('requestfinished', async request => {
    const entry = byRequest.get(request);
    if (!entry) return;
    entry.ms = since() - entry.t;
    try {
      const sizes = await request.sizes();
      entry.bytes = sizes.responseBodySize;
    } catch {
      // the page may be gone
    }
  });
  page.on('requestfailed', request => {
    const entry = byRequest.get(request);
    const failure = request.failure()?.errorText ?? 'failed';
    if (entry) {
      entry.failure = failure;
      entry.ms = since() - entry.t;
    } else {
      result.otherFailures.push({ url: request.url(), failure });
    }
  });
  page.on('response', response => {
    if (!isArchive(response.url()) && response.status() >= 400) {
      result.otherFailures.push({ url: response.url(), status: response.status() });
    }
  });
  page.on('console', message => {
    if (['error', 'warning'].includes(message.type())) {
      result.console.push({ t: since(), type: message.type(), text: message.text().slice(0, 2000) });
    }
  });
  page.on('pageerror', error => {
    result.console.push({ t: since(), type: 'pageerror', text: String(error).slice(0, 2000) });
  });
}

// The "investigational use only" banner covers the bottom of the page; OHIF remembers
// the answer in localStorage, which a fresh profile does not have.
async function dismissBanner(page) {
  const button = page.getByRole('button', { name: 'Confirm and hide' });
  if (await button.isVisible().catch(() => false)) await button.click().catch(() => {});
}

// Statistics of every cornerstone canvas, computed in the page from its own pixels.
function canvasStats() {
  return Array.from(document.querySelectorAll('canvas.cornerstone-canvas')).map(canvas => {
    const { width, height } = canvas;
    const box = canvas.getBoundingClientRect();
    const info = { width, height, visible: box.width > 0 && box.height > 0, readable: false };
    if (!width || !height) return info;
    let ctx = null;
    try {
      ctx = canvas.getContext('2d', { willReadFrequently: true });
    } catch {
      ctx = null;
    }
    if (!ctx) return info;
    const data = ctx.getImageData(0, 0, width, height).data;
    const step = Math.max(1, Math.floor((width * height) / 200000));
    let n = 0;
    let sum = 0;
    let sumSq = 0;
    let lit = 0;
    for (let p = 0; p < width * height; p += step) {
      const i = p * 4;
      const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      n += 1;
      sum += y;
      sumSq += y * y;
      if (y > 16) lit += 1;
    }
    const mean = sum / n;
    return {
      ...info,
      readable: true,
      mean,
      std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)),
      litFraction: lit / n,
    };
  });
}

const nonBlank = s => s.readable && s.visible && s.std > 4 && s.litFraction > 0.01;

// Thumbnails in the study browser: OHIF renders each from the series' first frame into an
// <img> (a data: URL), so their pixels are readable here too.
function thumbnailStats() {
  return Array.from(document.querySelectorAll('[data-cy^="study-browser-thumbnail"]')).map(el => {
    const described = el.querySelector('[data-cy="series-description-label"]');
    const label = (described ?? el).innerText.trim().split('\n')[0] ?? '';
    const img = el.querySelector('img');
    if (!img || !img.complete || !img.naturalWidth) return { label, rendered: false };
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < data.length; i += 4) {
      const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      n += 1;
      sum += y;
      sumSq += y * y;
    }
    const mean = sum / n;
    const std = Math.sqrt(Math.max(0, sumSq / n - mean * mean));
    return { label, rendered: std > 4, std };
  });
}

async function untilRendered(page, timeout, accept = stats => stats.some(nonBlank)) {
  const deadline = Date.now() + timeout;
  let stats = [];
  while (Date.now() < deadline) {
    stats = await page.evaluate(canvasStats);
    if (accept(stats)) break;
    await page.waitForTimeout(250);
  }
  return stats;
}

async function main() {
  fs.mkdirSync(opts.outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'omipacs-ohif-profile-'));
  const timeout = opts.timeoutMs;
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(opts.extraArgs ?? []),
    ],
    viewport: { width: 1600, height: 1000 },
    // OHIF registers a service worker; requests it made would bypass page.on('request').
    serviceWorkers: 'block',
  });
  try {
    context.setDefaultTimeout(timeout);
    const page = context.pages()[0] ?? (await context.newPage());
    currentPage = page;
    record(page);
    result.browserVersion = context.browser()?.version() ?? null;

    await step('study list', async () => {
      await page.goto(`${opts.ohifUrl}/`, { waitUntil: 'domcontentloaded' });
      const count = page.locator('[data-cy="num-studies"]');
      const sourceError = page.getByText('Data Source Connection Error');
      let ready = count.or(sourceError);
      if (opts.studies.length) {
        // Other OHIF layouts have no num-studies: a listed patient ID also means "rendered".
        ready = ready.or(page.getByText(opts.studies[0].patientId, { exact: true }));
      }
      await ready.first().waitFor({ state: 'visible' });
      if (await sourceError.isVisible()) {
        await shot(page, 'study-list');
        throw new Error('OHIF shows "Data Source Connection Error" for the archive');
      }
      await dismissBanner(page);
      const shownCount = async () =>
        (await count.count()) ? (await count.first().textContent())?.trim() : null;
      if (!opts.studies.length) {
        await page.waitForLoadState('networkidle');
        await shot(page, 'study-list');
        return { shown: await shownCount() };
      }
      // 3.12 wraps the rows in study-list-results; fall back to the page for other layouts.
      const list = page.locator('[data-cy="study-list-results"]');
      const results = (await list.count()) ? list : page.locator('body');
      const missing = [];
      for (const study of opts.studies) {
        // An accession number names one study; a patient ID may name several.
        const row = results.getByText(study.accession || study.patientId, { exact: true }).first();
        try {
          await row.waitFor({ state: 'visible', timeout: Math.min(timeout, 15000) });
        } catch {
          missing.push(study);
        }
      }
      await shot(page, 'study-list');
      const shown = await shownCount();
      if (missing.length) {
        throw new Error(
          `study list is missing ${missing.length}/${opts.studies.length} studies ` +
            `(${missing.map(s => `${s.patientId}/${s.accession}`).join(', ')}); OHIF shows ${shown}`
        );
      }
      if (shown !== null && shown !== String(opts.studies.length)) {
        throw new Error(`OHIF counts ${shown} studies, the archive lists ${opts.studies.length}`);
      }
      return { shown, expected: opts.studies.length };
    });

    if (!opts.openStudy) return;
    const study = opts.studies.find(s => s.uid === opts.openStudy) ?? { patientId: null };

    if (study.patientId) {
      await step('filter by MRN', async () => {
        // OHIF sends 00100020=*<typed>* (supportsWildcard): the archive's wildcard matching.
        const query = page.waitForResponse(
          r => isArchive(r.url()) && /[?&]00100020=/.test(r.url())
        );
        await page.locator('[data-cy="input-mrn"]').fill(study.patientId);
        const response = await query;
        const expected = opts.studies.filter(s => s.patientId === study.patientId).length;
        const others = [...new Set(opts.studies.map(s => s.patientId))].filter(
          id => id !== study.patientId
        );
        const count = page.locator('[data-cy="num-studies"]');
        const deadline = Date.now() + timeout;
        let shown = null;
        let leaked = [];
        while (Date.now() < deadline) {
          shown = (await count.first().textContent())?.trim();
          leaked = [];
          for (const id of others) {
            if (await page.getByText(id, { exact: true }).count()) leaked.push(id);
          }
          if (shown === String(expected) && !leaked.length) break;
          await page.waitForTimeout(250);
        }
        if (shown !== String(expected) || leaked.length) {
          throw new Error(
            `filtering on MRN ${study.patientId} shows ${shown} studies` +
              (leaked.length ? ` including patients ${leaked.join(', ')}` : '') +
              `; expected ${expected} (${response.url()} -> ${response.status()})`
          );
        }
        return { query: response.url().split('?')[1], shown };
      });

      await step('expand study row', async () => {
        const results = page.locator('[data-cy="study-list-results"]');
        const seriesQuery = page.waitForResponse(
          r => isArchive(r.url()) && r.url().includes(`/studies/${opts.openStudy}/series`)
        );
        // The accession number tells this study's row from the patient's other studies.
        const label = study.accession || study.patientId;
        await results.getByText(label, { exact: true }).first().click();
        await seriesQuery;
        await page.waitForLoadState('networkidle');
        await shot(page, 'study-row');
      });
    }

    await step('open viewer', async () => {
      await page.goto(`${opts.ohifUrl}/viewer?StudyInstanceUIDs=${opts.openStudy}`, {
        waitUntil: 'domcontentloaded',
      });
      // Without a GPU, cornerstone renders with WebGL on SwiftShader or falls back to CPU.
      result.webgl = await page.evaluate(() => {
        const gl = document.createElement('canvas').getContext('webgl2');
        if (!gl) return null;
        const info = gl.getExtension('WEBGL_debug_renderer_info');
        return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : 'webgl2';
      });
      await page.locator('[data-cy="viewport-pane"] canvas.cornerstone-canvas').first().waitFor({
        state: 'visible',
      });
    });

    await step('viewport renders', async () => {
      // The first-visit tour ("Scrolling Through Images") would cover the viewport.
      const skipTour = page.getByRole('button', { name: 'Skip all' });
      await skipTour.click({ timeout: 3000 }).catch(() => {});
      let stats = await untilRendered(page, timeout);
      result.viewport = { stats, firstImageMs: since() };
      // Let the remaining viewports and thumbnails finish before the screenshots.
      await page.waitForLoadState('networkidle').catch(() => {});
      stats = await page.evaluate(canvasStats);
      result.viewport.stats = stats;
      await shot(page, 'viewer');
      const pane = page.locator('[data-cy="viewport-pane"]').first();
      await shot(page, 'viewport', pane);
      const rendered = stats.filter(nonBlank).length;
      result.viewport.rendered = rendered;
      if (!rendered) {
        const why = stats.length
          ? stats.some(s => s.readable)
            ? 'every viewport canvas is blank'
            : 'viewport canvases are not readable as 2D (see the viewport screenshot)'
          : 'no cornerstone canvas on the page';
        if (stats.length && !stats.some(s => s.readable)) {
          result.viewport.unreadable = true;
          return { rendered: 0, canvases: stats.length, note: why };
        }
        throw new Error(why);
      }
      return { rendered, canvases: stats.length, webgl: result.webgl };
    });

    await step('thumbnails', async () => {
      const deadline = Date.now() + timeout;
      let thumbs = [];
      while (Date.now() < deadline) {
        thumbs = await page.evaluate(thumbnailStats);
        if (thumbs.length && thumbs.every(t => t.rendered)) break;
        await page.waitForTimeout(250);
      }
      result.thumbnails = thumbs;
      const blank = thumbs.filter(t => !t.rendered).map(t => t.label);
      if (!thumbs.length) throw new Error('the study browser shows no thumbnails');
      if (blank.length) {
        throw new Error(`${blank.length}/${thumbs.length} thumbnails stay blank: ${blank.join(', ')}`);
      }
      return { rendered: thumbs.length };
    });

    if (opts.voiSeries) {
      await step('VOI LUT image', async () => {
        const { description } = opts.voiSeries;
        const overlay = page.locator('[data-cy="viewport-overlay-top-left"]').first();
        const before = (await page.evaluate(canvasStats)).find(nonBlank);
        await page
          .locator('[data-cy="study-browser-thumbnail"]')
          .filter({ has: page.getByText(description, { exact: true }) })
          .first()
          .dblclick();
        await overlay.getByText(description, { exact: true }).waitFor({ state: 'visible' });
        // The overlay switches first; wait for the canvas to show a different picture.
        const changed = st => st.some(c => nonBlank(c) && Math.abs(c.mean - (before?.mean ?? -99)) > 0.5);
        await untilRendered(page, Math.min(timeout, 10000), changed);
        await page.waitForLoadState('networkidle').catch(() => {});
        const stats = await page.evaluate(canvasStats);
        const pane = page.locator('[data-cy="viewport-pane"]').first();
        await shot(page, 'viewport-voi-lut', pane);
        result.voiViewport = { ...opts.voiSeries, stats };
        if (!stats.some(nonBlank)) {
          throw new Error(`series "${description}" (VOI LUT Function ` +
            `${opts.voiSeries.voiLutFunction}) does not render: the viewport is blank`);
        }
        return { series: description, voiLutFunction: opts.voiSeries.voiLutFunction };
      });
    }
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

try {
  await main();
  result.ok = result.steps.every(s => s.ok);
} catch (error) {
  // Playwright colours its call log; keep the message plain for logs and reports.
  const plain = String(error?.message ?? error).replace(/\u001b\[[0-9;]*m/g, '');
  result.error = plain.split('\n').slice(0, 12).join('\n');
}
result.totalMs = since();
writeResult();
process.stdout.write(`${JSON.stringify({ ok: result.ok, error: result.error })}\n`);
process.exit(result.ok ? 0 : 1);
