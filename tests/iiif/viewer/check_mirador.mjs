// Opens Mirador pages in headless Chromium and reports, per canvas, the annotations Mirador lists.
//
//   node check_mirador.mjs VIEWS_JSON OUT_DIR
//
// VIEWS_JSON: a JSON list of [PAGE_URL, CANVAS_ID] (PAGE_URL: mirador.html?manifest=...). For each, the page is
// opened at that canvas (PAGE_URL&canvas=ID), the annotation side panel is read once it has settled (the
// `annotationid` attribute and text of each listed annotation), and once the viewer has finished drawing
// (`drawn`) OUT_DIR/canvas-N.png is a screenshot, with the OpenSeadragon canvas's rectangle in page pixels
// (`viewer`) and Mirador's viewport (`viewport`: the centre x, y in canvas units and OpenSeadragon's zoom, the
// viewer's width over the visible width in canvas units). The result is printed as one JSON line.
// Chromium: ARTDUP_CHROMIUM or /usr/bin/chromium (playwright-core drives it; it brings no browser of its own).

import { chromium } from 'playwright-core';
import path from 'node:path';

const [viewsJson, outDir] = process.argv.slice(2);
const views = JSON.parse(viewsJson);
const executablePath = process.env.ARTDUP_CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const result = { canvases: [], errors: [], failedRequests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (error) => result.errors.push(String(error)));
  page.on('requestfailed', (request) => result.failedRequests.push(request.url()));
  page.on('response', (response) => {
    if (response.status() >= 400) result.failedRequests.push(`${response.status()} ${response.url()}`);
  });
  for (const [index, [pageUrl, canvasId]] of views.entries()) {
    await page.goto(`${pageUrl}&canvas=${encodeURIComponent(canvasId)}`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.miradorInstance && Object.keys(
      window.miradorInstance.store.getState().windows).length > 0, null, { timeout: 30000 });
    // Settled: the window shows this canvas, every annotation page the manifest lists for it has arrived, and
    // the panel lists as many annotations as those pages hold.
    const settled = await page.waitForFunction((id) => {
      const state = window.miradorInstance.store.getState();
      const win = Object.values(state.windows)[0];
      const manifest = Object.values(state.manifests)[0];
      if (win.canvasId !== id || !manifest || !manifest.json) return false;
      const canvas = manifest.json.items.find((c) => c.id === id);
      const pages = state.annotations[id] || {};
      const wanted = ((canvas && canvas.annotations) || []).map((p) => p.id);
      if (!wanted.every((p) => pages[p] && !pages[p].isFetching && pages[p].json)) return false;
      const expected = Object.values(pages).flatMap((p) => (p.json && p.json.items) || []).length;
      const listed = document.querySelectorAll('li[annotationid]').length;
      const viewer = document.querySelector('.openseadragon-canvas canvas');
      return listed === expected && viewer !== null && { expected };
    }, canvasId, { timeout: 30000, polling: 200 });
    const annotated = (await settled.jsonValue()).expected > 0;
    // Drawn: every 2d canvas of the viewer (the annotation overlay; the image itself where OpenSeadragon draws
    // on a 2d canvas) looks the same in three samples 300 ms apart, and the overlay is not blank when the
    // canvas has annotations. A fixed pause would race the zoom-to-fit animation on a busy machine.
    let previous = null;
    let same = 0;
    for (let poll = 0; poll < 100 && same < 3; poll += 1) {
      await page.waitForTimeout(300);
      const sums = await page.evaluate(() => [...document.querySelectorAll('.openseadragon-canvas canvas')].map(
        (c) => {
          const context = c.width && c.height ? c.getContext('2d') : null;
          if (!context) return -1; // a WebGL canvas, not readable here
          const data = context.getImageData(0, 0, c.width, c.height).data;
          let sum = 0;
          for (let i = 3; i < data.length; i += 4 * 13) sum = (sum * 31 + data[i] + data[i - 1]) % 1000000007;
          return sum;
        }));
      const overlayDrawn = sums.length > 1 && sums[sums.length - 1] > 0; // the overlay is added last
      const key = JSON.stringify(sums);
      same = key === previous && (overlayDrawn || !annotated) ? same + 1 : 0;
      previous = key;
    }
    const listed = await page.$$eval('li[annotationid]', (items) => items.map((li) => ({
      id: li.getAttribute('annotationid'), text: li.textContent,
    })));
    const pages = await page.evaluate((id) => Object.keys(
      window.miradorInstance.store.getState().annotations[id] || {}), canvasId);
    const box = await page.$eval('.openseadragon-canvas', (el) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height };
    });
    const viewport = await page.evaluate(() => {
      const state = window.miradorInstance.store.getState();
      const v = state.viewers[Object.values(state.windows)[0].id];
      return v ? { x: v.x, y: v.y, zoom: v.zoom, rotation: v.rotation || 0, flip: !!v.flip } : null;
    });
    const screenshot = path.join(outDir, `canvas-${index + 1}.png`);
    await page.screenshot({ path: screenshot });
    result.canvases.push({ page: pageUrl, canvas: canvasId, listed, pages, viewer: box, viewport, screenshot,
                           drawn: same >= 3 });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
