// view.html in a real browser, as a person would use it: Debian's chromium, headless, driven by
// puppeteer-core. Tagged @browser: `npm run test:build` runs it (it needs the chromium package).
// Screenshots go to test/artifacts/ (git-ignored).
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { writeViewPage } from '../../compiler/cli/view.js';
import { compile } from '../../compiler/compile.js';
import { ROOT } from '../cli/run-cli.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test', 'artifacts');
const MAX_LOAD_MS = 2000;
const MAX_BYTES = 10 * 1024 * 1024;

interface Drawn {
  rects: Record<string, number>;
  lanes: number;
  drawnMs: number;
  memoryAreas: number;
  memoryCanvases: number;
  flowNodes: number;
}

async function openView(browser: Browser, path: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(path).href, { waitUntil: 'load' });
  try {
    await page.waitForSelector('body[data-drawn="true"]', { timeout: 10_000 });
  } catch (e) {
    // a page that never finishes drawing has usually thrown: say what
    throw new Error(`${(e as Error).message}; page errors: ${errors.join(' | ') || 'none'}`);
  }
  return { page, errors };
}

const drawnState = (page: Page): Promise<Drawn> =>
  page.evaluate(() => {
    const c = document.getElementById('timeline') as HTMLCanvasElement;
    const mem = document.getElementById('memory')!;
    return {
      rects: JSON.parse(c.dataset.rects ?? '{}') as Record<string, number>,
      lanes: Number(c.dataset.lanes),
      drawnMs: Number(document.body.dataset.drawnMs),
      memoryAreas: Number(mem.dataset.areas),
      memoryCanvases: mem.querySelectorAll('canvas').length,
      flowNodes: document.querySelectorAll('#dataflow g[data-node]').length,
    };
  });

/** Page coordinates of the middle of the longest compute span in view, and its op. */
const longestComputeSpan = (page: Page): Promise<{ x: number; y: number; op: string }> =>
  page.evaluate(() => {
    const c = document.getElementById('timeline') as HTMLCanvasElement;
    const layout = JSON.parse(c.dataset.layout!) as { labelWidth: number; lanesTop: number; laneHeight: number };
    const t0 = Number(c.dataset.viewStart);
    const t1 = Number(c.dataset.viewEnd);
    // the data the page drew from, as it carries it
    const t = (JSON.parse(document.getElementById('view-data')!.textContent!) as { timeline: { spans: number[]; instrs: { op: string }[] } }).timeline;
    let best = 0;
    for (let k = 0; k < t.spans.length; k += 8) if (t.spans[k + 1] === 0 && t.spans[k + 3] - t.spans[k + 2] > t.spans[best + 3] - t.spans[best + 2]) best = k;
    const mid = (t.spans[best + 2] + t.spans[best + 3]) / 2;
    const r = c.getBoundingClientRect();
    const x = r.left + layout.labelWidth + ((mid - t0) / (t1 - t0)) * (r.width - layout.labelWidth);
    const y = r.top + layout.lanesTop + layout.laneHeight / 2 - 4;
    return { x, y, op: t.instrs[t.spans[best]].op };
  });

describe('fpdtc view in a browser @browser', function () {
  this.timeout(120_000);
  let browser: Browser;
  let out = '';
  const pages = new Map<string, string>();

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'fpdtc-view-page-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const model of ['tiny-llama', 'llama70b']) {
      const r = await compile(model, {}, { outDir: out });
      pages.set(model, resolve(writeViewPage(r.modelOutDir)));
    }
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  });
  after(async () => {
    try {
      await browser?.close();
    } finally {
      if (out) rmSync(out, { recursive: true, force: true });
    }
  });

  for (const model of ['tiny-llama', 'llama70b']) {
    it(`draws ${model}: four lanes, memory, dataflow; tooltips on hover; the wheel zooms`, async () => {
      const path = pages.get(model)!;
      const { page, errors } = await openView(browser, path);
      const d = await drawnState(page);
      expect(d.lanes).to.equal(4);
      for (const st of ['compute', 'h2d', 'd2h', 'comm']) expect(d.rects[st], `${st} spans drawn`).to.be.above(0);
      expect(d.memoryCanvases).to.equal(2);
      expect(d.memoryAreas).to.be.above(0);
      expect(d.flowNodes).to.be.above(10);

      await page.screenshot({ path: join(ARTIFACTS, `view-${model}.png`), fullPage: true });
      const target = await longestComputeSpan(page);
      await page.mouse.move(target.x, target.y);
      const tip = await page.$eval('#tooltip', (e) => ({ hidden: (e as HTMLElement).hidden, text: e.textContent ?? '' }));
      expect(tip.hidden).to.equal(false);
      expect(tip.text).to.include(target.op);
      expect(tip.text).to.match(/bytes .* FLOPs/);
      expect(tip.text).to.include('waits');

      const range = () => page.$eval('#timeline', (c) => Number((c as HTMLElement).dataset.viewEnd) - Number((c as HTMLElement).dataset.viewStart));
      const before = await range();
      await page.mouse.wheel({ deltaY: -400 });
      await page.waitForFunction((b: number) => {
        const c = document.getElementById('timeline') as HTMLElement;
        return Number(c.dataset.viewEnd) - Number(c.dataset.viewStart) < b;
      }, { timeout: 5000 }, before);
      expect(await range()).to.be.below(before / 2);

      const mem = await page.$('#memory canvas');
      await mem!.click();
      expect(await page.$eval('#memory-live', (e) => (e as HTMLElement).dataset.position)).to.be.a('string');

      expect(errors).to.deep.equal([]);
      const bytes = statSync(path).size;
      console.log(`      ${model}: view.html ${(bytes / 1024 / 1024).toFixed(2)} MiB, drawn ${d.drawnMs} ms after navigation start`);
      if (model === 'llama70b') {
        expect(d.drawnMs).to.be.below(MAX_LOAD_MS);
        expect(bytes).to.be.below(MAX_BYTES);
      }
      await page.close();
    });
  }
});
