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
//   marked          {study, srSeries, srInstance, srDescription, srSeriesNumber, imageSeries,
//                   imageInstance, imageDescription, marks: [{box, graphicType, finding}]}: the
//                   mark SR (TID 1500) of the opened study, which must be listed in the study
//                   panel and, opened from its thumbnail, show its referenced image with one
//                   drawn annotation per mark; null to skip
//   timeoutMs       budget for each wait
//   token           a bearer token for the archive (a licence root needs one), or null. The
//                   check then first opens the study list without it (the archive must answer
//                   401), then opens the viewer as a user would with OHIF's own mechanism,
//                   `/viewer?StudyInstanceUIDs=...&token=...` (OHIF sends it as
//                   `Authorization: Bearer` and removes it from the address bar), and goes back
//                   to the study list in the app, which keeps using the token
//   hiddenStudies   [{uid, patientId, accession}] the archive holds outside this root: none of
//                   their patient IDs or accession numbers may appear on the study list
//
// Writes outDir/result.json: {ok, error, steps, requests, console, viewport, srViewport}
// and exits 0
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

// Which part of the check a recorded request belongs to: 'no-token' requests are meant to be
// refused, so they are reported apart from the archive's failures.
let phase = 'main';

// Requests are written to result.json; a bearer token must not be.
function redacted(headers) {
  const out = { ...headers };
  if (out.authorization) out.authorization = out.authorization.replace(/^(\S+)\s.*$/, '$1 [redacted]');
  return out;
}

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
      phase,
      requestHeaders: redacted(request.headers()),
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
// <img> (a data: URL), so their pixels are readable here too. Series without pixels (SR)
// get a "no image" tile instead, which is not judged here.
function thumbnailStats() {
  return Array.from(document.querySelectorAll('[data-cy="study-browser-thumbnail"]')).map(el => {
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

// What OHIF made of the mark SR: its display set (by series UID), the viewport showing it,
// and the annotations cornerstone drew into that viewport's SVG layer.
function srState([srSeries, boxes]) {
  const services = window.services;
  if (!services) return { services: false };
  const { displaySetService, viewportGridService } = services;
  const sets = displaySetService.getActiveDisplaySets();
  const sr = sets.find(ds => ds.SeriesInstanceUID === srSeries);
  const out = {
    services: true,
    displaySet: null,
    viewportId: null,
    annotations: 0,
    shapes: {},
    texts: [],
  };
  if (!sr) return out;
  out.displaySet = {
    uid: sr.displaySetInstanceUID,
    handler: sr.SOPClassHandlerId,
    label: sr.label ?? null,
    isLoaded: sr.isLoaded ?? null,
    isRehydratable: sr.isRehydratable ?? null,
    isHydrated: sr.isHydrated ?? null,
    referencedImages: (sr.referencedImages ?? []).length,
    measurements: (sr.measurements ?? []).map(m => ({
      loaded: m.loaded,
      trackingIdentifier: m.TrackingIdentifier,
      graphicType: m.graphicType ?? m.coords?.[0]?.GraphicType ?? null,
      points: m.pointsLength ?? null,
      referencedSOP: m.coords?.[0]?.ReferencedSOPSequence?.ReferencedSOPInstanceUID ?? null,
      imageId: m.imageId ?? null,
      labels: (m.labels ?? []).map(l => `${l.label}: ${l.value}`),
    })),
  };
  const viewports = [...(viewportGridService.getState().viewports?.values?.() ?? [])];
  const shown = viewports.find(v => (v.displaySetInstanceUIDs ?? []).includes(sr.displaySetInstanceUID));
  if (!shown) return out;
  out.viewportId = shown.viewportId;
  const element = document.querySelector(`[data-viewportid="${shown.viewportId}"]`);
  const layer = element?.querySelector('svg.svg-layer');
  if (!layer) return out;
  const groups = layer.querySelectorAll('[data-annotation-uid]');
  const shapes = layer.querySelectorAll('polyline, path, rect, circle, ellipse, line, polygon');
  for (const shape of shapes) {
    const box = shape.getBoundingClientRect();
    if (box.width <= 0 && box.height <= 0) continue;
    out.shapes[shape.tagName] = (out.shapes[shape.tagName] ?? 0) + 1;
  }
  out.annotations = Math.max(
    new Set([...groups].map(g => g.getAttribute('data-annotation-uid'))).size,
    Object.values(out.shapes).reduce((a, b) => a + b, 0) ? 1 : 0
  );
  out.texts = [...layer.querySelectorAll('text')].map(t => t.textContent).filter(Boolean);
  // Each drawn polyline's bounding box in canvas (CSS) pixels: the SVG layer lies over the canvas.
  out.polylines = [...layer.querySelectorAll('polyline')].map(line => {
    const nums = (line.getAttribute('points') ?? '').trim().split(/[\s,]+/).map(Number);
    const xs = nums.filter((_, i) => i % 2 === 0);
    const ys = nums.filter((_, i) => i % 2 === 1);
    return { points: xs.length, box: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] };
  });
  // Where the marks' boxes land on this viewport's canvas. Box corners are SCOORD image
  // coordinates, (0,0) being the top left corner of the top left pixel (PS3.3 §C.18.6.1.2);
  // cornerstone's indices are pixel centres, half a pixel further.
  out.expectedBoxes = [];
  const viewport = services.cornerstoneViewportService?.getCornerstoneViewport?.(shown.viewportId);
  const imageData = viewport?.getImageData?.()?.imageData;
  if (viewport && imageData && boxes) {
    for (const box of boxes) {
      if (!Array.isArray(box) || box.length !== 4) continue;
      const [x0, y0, x1, y1] = box;
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) =>
        viewport.worldToCanvas(imageData.indexToWorld([x - 0.5, y - 0.5, 0]))
      );
      const xs = corners.map(c => c[0]);
      const ys = corners.map(c => c[1]);
      out.expectedBoxes.push([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)]);
    }
  }
  return out;
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

// Buttons OHIF may show when an SR is opened: "track these measurements?" prompts and the
// SR viewport's hydrate ("load") control. Answer so the SR's content is shown.
const SR_PROMPTS = [/^yes$/i, /^load$/i, /^track$/i, /^continue$/i];

async function answerPrompts(page) {
  const answered = [];
  for (const name of SR_PROMPTS) {
    const button = page.getByRole('button', { name });
    if (await button.first().isVisible().catch(() => false)) {
      const text = (await button.first().innerText().catch(() => '')).trim();
      await button.first().click({ timeout: 2000 }).catch(() => {});
      answered.push(text || String(name));
    }
  }
  return answered;
}

async function srSteps(page, marked, timeout) {
  let thumbnailId = null;

  await step('SR in study panel', async () => {
    // OHIF makes display sets from every series' metadata; the SR's is found by series UID.
    const deadline = Date.now() + timeout;
    let state = null;
    while (Date.now() < deadline) {
      state = await page.evaluate(srState, [marked.srSeries, marked.marks.map(m => m.box)]);
      if (state.displaySet) break;
      await page.waitForTimeout(250);
    }
    if (!state?.services) throw new Error('window.services is missing: cannot inspect display sets');
    if (!state.displaySet) {
      throw new Error(`OHIF made no display set for SR series ${marked.srSeries}`);
    }
    thumbnailId = `thumbnail-${state.displaySet.uid}`;
    const tile = page.locator(`[id="${thumbnailId}"]`);
    await tile.waitFor({ state: 'visible' });
    const text = (await tile.innerText()).replace(/\s+/g, ' ').trim();
    const dataCy = await tile.getAttribute('data-cy');
    const series = await tile.getAttribute('data-series');
    const srTiles = await page.locator('[data-cy="study-browser-thumbnail-no-image"]').count();
    const problems = [];
    if (marked.srDescription && !text.includes(marked.srDescription)) {
      problems.push(`its tile reads "${text}", not "${marked.srDescription}"`);
    }
    if (!/\bSR\b/.test(text)) problems.push(`its tile "${text}" does not say SR`);
    if (problems.length) throw new Error(`SR series ${marked.srSeries}: ${problems.join('; ')}`);
    result.srPanel = { text, dataCy, series, srTiles, handler: state.displaySet.handler };
    return result.srPanel;
  });

  await step('open SR', async () => {
    const tile = page.locator(`[id="${thumbnailId}"]`);
    await tile.scrollIntoViewIfNeeded();
    await tile.dblclick();
    const deadline = Date.now() + timeout;
    const prompts = [];
    let state = null;
    const want = marked.marks.length;
    while (Date.now() < deadline) {
      state = await page.evaluate(srState, [marked.srSeries, marked.marks.map(m => m.box)]);
      const ms = state.displaySet?.measurements ?? [];
      if (state.viewportId && ms.length && ms.every(m => m.loaded) && state.annotations >= want) {
        break;
      }
      await page.waitForTimeout(250);
    }
    result.srViewport = { ...state, prompts };
    if (!state?.viewportId) throw new Error('no viewport shows the SR after a double-click on it');
    const ms = state.displaySet.measurements;
    if (!ms.length) {
      throw new Error(`OHIF read no measurements from SR ${marked.srInstance} ` +
        `(display set ${JSON.stringify(state.displaySet)})`);
    }
    if (ms.length !== want) {
      throw new Error(`OHIF read ${ms.length} measurement(s) from the SR; the archive has ${want} mark(s)`);
    }
    const unplaced = ms.filter(m => !m.loaded);
    if (unplaced.length) {
      throw new Error(`${unplaced.length}/${ms.length} SR measurement(s) were not placed on an ` +
        `image (referenced SOP ${unplaced.map(m => m.referencedSOP).join(', ')}; ` +
        `expected ${marked.imageInstance})`);
    }
    const elsewhere = ms.filter(m => !(m.imageId ?? '').includes(marked.imageInstance));
    if (elsewhere.length) {
      throw new Error(`SR measurement(s) placed on ${elsewhere.map(m => m.imageId).join(', ')}, ` +
        `not on image ${marked.imageInstance}`);
    }
    return { measurements: ms.length, prompts, viewportId: state.viewportId };
  });

  await step('SR viewport', async () => {
    const want = marked.marks.length;
    const pane = page.locator(`[data-cy="viewport-pane"]:has([data-viewportid="${result.srViewport.viewportId}"])`);
    const deadline = Date.now() + timeout;
    let state = result.srViewport;
    let stats = [];
    while (Date.now() < deadline) {
      state = await page.evaluate(srState, [marked.srSeries, marked.marks.map(m => m.box)]);
      stats = await pane.evaluate(el =>
        Array.from(el.querySelectorAll('canvas.cornerstone-canvas')).map(c => {
          const ctx = c.getContext('2d', { willReadFrequently: true });
          if (!ctx || !c.width || !c.height) return { readable: false };
          const d = ctx.getImageData(0, 0, c.width, c.height).data;
          let n = 0, sum = 0, sumSq = 0, lit = 0;
          for (let i = 0; i < d.length; i += 4 * 7) {
            const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
            n += 1; sum += y; sumSq += y * y; if (y > 16) lit += 1;
          }
          const mean = sum / n;
          return { readable: true, visible: true, mean,
            std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)), litFraction: lit / n };
        })
      ).catch(() => []);
      if (state.annotations >= want && stats.some(nonBlank)) break;
      await page.waitForTimeout(250);
    }
    await page.waitForLoadState('networkidle').catch(() => {});
    await page.waitForTimeout(500);
    state = await page.evaluate(srState, [marked.srSeries, marked.marks.map(m => m.box)]);
    const overlay = (await pane.innerText().catch(() => '')).replace(/\s+/g, ' ').trim();
    result.srViewport = { ...result.srViewport, ...state, stats, overlay };
    await shot(page, 'viewer-sr');
    await shot(page, 'sr-viewport', pane);
    if (!stats.some(nonBlank)) throw new Error('the SR viewport shows no image');
    if (state.annotations < want) {
      throw new Error(`the SR viewport draws ${state.annotations} annotation(s) for ` +
        `${want} mark(s) (SVG shapes ${JSON.stringify(state.shapes)})`);
    }
    // Every mark's box must be drawn where it lies on the image: a closed polyline whose
    // bounding box matches the box mapped through the viewport, within 2 CSS pixels.
    const close = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 2);
    const misplaced = state.expectedBoxes.filter(e => !state.polylines.some(p => close(p.box, e)));
    const boxed = marked.marks.filter(m => Array.isArray(m.box) && m.box.length === 4).length;
    if (state.expectedBoxes.length !== boxed) {
      throw new Error(`could map ${state.expectedBoxes.length}/${boxed} mark box(es) onto the viewport`);
    }
    if (misplaced.length) {
      throw new Error(`${misplaced.length}/${boxed} mark box(es) are not drawn where they lie: ` +
        `expected ${JSON.stringify(misplaced.map(b => b.map(Math.round)))}, drawn ` +
        `${JSON.stringify(state.polylines.map(p => p.box.map(Math.round)))}`);
    }
    return { annotations: state.annotations, shapes: state.shapes, texts: state.texts.slice(0, 6) };
  });

  await step('track SR measurements', async () => {
    // OHIF asks whether to track (hydrate) the SR's measurements; yes turns them into
    // editable measurements listed in the measurements panel.
    const prompt = page.locator('[data-cy="viewport-pane"]').getByText(/tracking measurements/i);
    const asked = (await prompt.count()) ? (await prompt.first().innerText()).trim() : null;
    const answered = asked ? await answerPrompts(page) : [];
    const panel = page.locator('[data-cy="trackedMeasurements-panel"]');
    if (!(await panel.isVisible().catch(() => false))) {
      await page.locator('[data-cy="trackedMeasurements-btn"]').first().click().catch(() => {});
    }
    await panel.waitFor({ state: 'visible' });
    const deadline = Date.now() + timeout;
    let listed = [];
    let measured = 0;
    while (Date.now() < deadline) {
      measured = await page.evaluate(() => window.services.measurementService.getMeasurements().length);
      listed = (await panel.innerText()).split('\n').map(s => s.trim()).filter(Boolean);
      if (measured >= marked.marks.length) break;
      await page.waitForTimeout(250);
    }
    await page.waitForTimeout(500);
    listed = (await panel.innerText()).split('\n').map(s => s.trim()).filter(Boolean);
    await shot(page, 'viewer-marked');
    result.srTracked = { asked, answered, measured, panel: listed };
    if (measured < marked.marks.length) {
      throw new Error(`after "${answered.join(', ') || 'no prompt'}" OHIF tracks ${measured} ` +
        `measurement(s) for ${marked.marks.length} mark(s); panel: ${listed.join(' | ')}`);
    }
    const unlisted = marked.marks.map(m => m.finding).filter(f => f && !listed.includes(f));
    if (unlisted.length) {
      throw new Error(`the measurements panel does not list the finding(s) ${unlisted.join(', ')}: ` +
        listed.join(' | '));
    }
    return { asked, answered, measured, panel: listed.slice(0, 12) };
  });
}

// The study list as OHIF shows it (the page is on its way there): every study in
// opts.studies is listed, OHIF counts as many, and no study of opts.hiddenStudies shows.
async function checkStudyList(page, timeout, shotName) {
  const count = page.locator('[data-cy="num-studies"]');
  const sourceError = page.getByText('Data Source Connection Error');
  let ready = count.or(sourceError);
  if (opts.studies.length) {
    // Other OHIF layouts have no num-studies: a listed patient ID also means "rendered".
    ready = ready.or(page.getByText(opts.studies[0].patientId, { exact: true }));
  }
  await ready.first().waitFor({ state: 'visible' });
  if (await sourceError.isVisible()) {
    await shot(page, shotName);
    throw new Error('OHIF shows "Data Source Connection Error" for the archive');
  }
  await dismissBanner(page);
  const shownCount = async () =>
    (await count.count()) ? (await count.first().textContent())?.trim() : null;
  if (!opts.studies.length) {
    await page.waitForLoadState('networkidle');
    await shot(page, shotName);
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
  await shot(page, shotName);
  const shown = await shownCount();
  if (missing.length) {
    throw new Error(
      `study list is missing ${missing.length}/${opts.studies.length} studies ` +
        `(${missing.map(s => `${s.patientId}/${s.accession}`).join(', ')}); OHIF shows ${shown}`
    );
  }
  // Anywhere on the page, not only in the rows: no trace of a study outside this root.
  const leaked = [];
  for (const hidden of opts.hiddenStudies ?? []) {
    for (const label of [hidden.accession, hidden.patientId].filter(Boolean)) {
      if (await page.getByText(label, { exact: true }).count()) leaked.push(label);
    }
  }
  if (leaked.length) {
    throw new Error(`the study list shows studies from outside this root: ${leaked.join(', ')}`);
  }
  if (shown !== null && shown !== String(opts.studies.length)) {
    throw new Error(`OHIF counts ${shown} studies, the archive lists ${opts.studies.length}`);
  }
  return { shown, expected: opts.studies.length, hidden: (opts.hiddenStudies ?? []).length };
}

// A QIDO-RS study query ({root}/studies?...), the request behind OHIF's study list.
const isStudyQuery = url => new URL(url).pathname.endsWith('/studies');

// The study list opened without the token: the archive refuses OHIF's query with 401 and
// no study, inside the root or outside it, appears.
async function tokenlessSteps(page, timeout) {
  await step('study list without token', async () => {
    phase = 'no-token';
    try {
      const query = page.waitForResponse(r => isArchive(r.url()) && isStudyQuery(r.url()));
      await page.goto(`${opts.ohifUrl}/`, { waitUntil: 'domcontentloaded' });
      const response = await query;
      await page.waitForLoadState('networkidle', { timeout }).catch(() => {});
      await dismissBanner(page);
      await shot(page, 'study-list-no-token');
      const shown = [];
      for (const study of [...opts.studies, ...(opts.hiddenStudies ?? [])]) {
        for (const label of [study.accession, study.patientId].filter(Boolean)) {
          if (await page.getByText(label, { exact: true }).count()) shown.push(label);
        }
      }
      if (response.status() !== 401) {
        throw new Error(`without a token the archive answers ${response.status()} to ${response.url()}`);
      }
      if (shown.length) throw new Error(`without a token the study list shows ${shown.join(', ')}`);
      const counted = page.locator('[data-cy="num-studies"]');
      return {
        status: response.status(),
        wwwAuthenticate: (await response.allHeaders())['www-authenticate'] ?? null,
        sourceError: await page.getByText('Data Source Connection Error').isVisible(),
        shown: (await counted.count()) ? (await counted.first().textContent())?.trim() : null,
      };
    } finally {
      phase = 'main';
    }
  });
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

    if (opts.token) {
      await tokenlessSteps(page, timeout);
    } else {
      await step('study list', async () => {
        await page.goto(`${opts.ohifUrl}/`, { waitUntil: 'domcontentloaded' });
        return checkStudyList(page, timeout, 'study-list');
      });
    }

    if (!opts.openStudy) return;
    const study = opts.studies.find(s => s.uid === opts.openStudy) ?? { patientId: null };

    // With a token, the study list comes after the viewer (see tokenlessSteps).
    if (study.patientId && !opts.token) {
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
      const token = opts.token ? `&token=${encodeURIComponent(opts.token)}` : '';
      await page.goto(`${opts.ohifUrl}/viewer?StudyInstanceUIDs=${opts.openStudy}${token}`, {
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
      // OHIF takes the token out of the address bar once it holds it.
      if (opts.token) return { tokenInAddressBar: new URL(page.url()).searchParams.has('token') };
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

    if (opts.token) {
      await step('study list with token', async () => {
        // Back to the list inside the app: OHIF keeps the token it took from the viewer URL.
        const query = page.waitForResponse(r => isArchive(r.url()) && isStudyQuery(r.url()));
        await page.locator('[data-cy="return-to-work-list"]').first().click();
        const response = await query;
        if (response.status() !== 200) {
          throw new Error(`with the token the archive answers ${response.status()} to ${response.url()}`);
        }
        return { status: response.status(), ...(await checkStudyList(page, timeout, 'study-list')) };
      });
    }

    if (opts.marked) await srSteps(page, opts.marked, timeout);
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
