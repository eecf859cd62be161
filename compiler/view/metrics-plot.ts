// The picture `fpdtc plot` writes: a --metrics file's loss, tokens/s and learning rate against
// step, three stacked panels sharing the step axis, as one self-contained SVG (no script, no
// fonts fetched). Pure: points in, text out. A value that is not finite (NaN loss) is a gap.

/** One step of a metrics file; NaN where the file has no finite value. */
export interface MetricsPoint {
  step: number;
  loss: number;
  lr: number;
  tokensPerS: number;
}

export interface MetricsPlotInput {
  /** sorted by step, one point per step */
  points: readonly MetricsPoint[];
  /** shown in the header: the file the points came from */
  source: string;
}

interface PanelSpec {
  id: string;
  title: string;
  unit: string;
  color: string;
  value: (p: MetricsPoint) => number;
  /** throughput and rates read best against zero; loss against its own range */
  fromZero: boolean;
}

const PANELS: readonly PanelSpec[] = [
  { id: 'loss', title: 'loss', unit: 'nats/token', color: '#1f77b4', value: (p) => p.loss, fromZero: false },
  { id: 'tokens-per-s', title: 'throughput', unit: 'tokens/s', color: '#2ca02c', value: (p) => p.tokensPerS, fromZero: true },
  { id: 'lr', title: 'learning rate', unit: 'lr', color: '#d62728', value: (p) => p.lr, fromZero: true },
];

const WIDTH = 760;
const HEADER_H = 44;
const PANEL_H = 210;
const PLOT = { left: 78, right: 24, top: 34, bottom: 46 }; // inside a panel
const PLOT_W = WIDTH - PLOT.left - PLOT.right;
const PLOT_H = PANEL_H - PLOT.top - PLOT.bottom;
const FONT = 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif';
const TICKS = 5;

export function renderMetricsPlot(input: MetricsPlotInput): string {
  const { points } = input;
  const steps = points.map((p) => p.step);
  const x = niceAxis(steps[0], steps[steps.length - 1], TICKS, { integer: true });
  const height = HEADER_H + PANELS.length * PANEL_H;
  const nanLoss = points.filter((p) => !Number.isFinite(p.loss)).length;
  const summary =
    `${points.length} step${points.length === 1 ? '' : 's'} (${steps[0]}-${steps[steps.length - 1]})` +
    (nanLoss ? `, ${nanLoss} with loss NaN (gaps, marked red)` : '');
  return svgDocument(WIDTH, height, `${input.source}: ${summary}`, [
    el('rect', { width: WIDTH, height, fill: '#fff' }),
    el('text', { x: PLOT.left, y: 20, 'font-size': 14, 'font-weight': 600, fill: '#222' }, [text(input.source)]),
    el('text', { x: PLOT.left, y: 36, 'font-size': 12, fill: '#555' }, [text(summary)]),
    ...PANELS.map((spec, i) => renderPanel(spec, points, x, HEADER_H + i * PANEL_H)),
  ]);
}

function renderPanel(spec: PanelSpec, points: readonly MetricsPoint[], x: Axis, top: number): string {
  const values = points.map(spec.value);
  const finite = values.filter(Number.isFinite);
  const sx = (step: number) => PLOT.left + ((step - x.lo) / (x.hi - x.lo)) * PLOT_W;
  const parts: string[] = [
    el('text', { x: PLOT.left, y: 20, 'font-size': 13, 'font-weight': 600, fill: '#222' }, [
      text(spec.title),
      el('tspan', { 'font-weight': 400, fill: '#666' }, [text(` (${spec.unit})`)]),
    ]),
  ];
  if (finite.length === 0) {
    parts.push(frame(), el('text', { x: PLOT.left + PLOT_W / 2, y: PLOT.top + PLOT_H / 2, 'text-anchor': 'middle', 'font-size': 12, fill: '#888' }, [text('no values in the file')]));
    parts.push(...xAxis(x, sx));
    return el('g', { class: 'panel', id: `panel-${spec.id}`, transform: `translate(0,${top})` }, parts);
  }
  let [lo, hi] = extent(finite);
  const [min, max] = [lo, hi];
  if (spec.fromZero) [lo, hi] = [Math.min(lo, 0), Math.max(hi, 0)];
  const y = niceAxis(lo, hi, TICKS, { integer: false, fromZero: spec.fromZero && lo >= 0 });
  const sy = (v: number) => PLOT.top + PLOT_H - ((v - y.lo) / (y.hi - y.lo)) * PLOT_H;
  const last = finite[finite.length - 1];
  parts.push(
    el('text', { x: WIDTH - PLOT.right, y: 20, 'text-anchor': 'end', 'font-size': 12, fill: '#555' }, [
      text(`last ${formatValue(last)} · min ${formatValue(min)} · max ${formatValue(max)}`),
    ]),
  );
  // y grid and tick labels
  const yLabel = tickFormatter(y);
  for (const t of y.ticks) {
    const py = round(sy(t));
    parts.push(
      el('line', { x1: PLOT.left, x2: PLOT.left + PLOT_W, y1: py, y2: py, stroke: '#eee' }),
      el('text', { class: 'y-tick', x: PLOT.left - 6, y: py + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#444' }, [text(yLabel(t))]),
    );
  }
  parts.push(
    el('text', { x: 16, y: PLOT.top + PLOT_H / 2, transform: `rotate(-90 16 ${PLOT.top + PLOT_H / 2})`, 'text-anchor': 'middle', 'font-size': 11, fill: '#444' }, [text(spec.unit)]),
    frame(),
    ...xAxis(x, sx),
  );
  // red marks where the value is missing, so that a gap reads as a gap and not as a quiet stretch
  for (const p of points)
    if (spec.id === 'loss' && !Number.isFinite(p.loss)) {
      const px = round(sx(p.step));
      parts.push(el('line', { class: 'gap', x1: px, x2: px, y1: PLOT.top, y2: PLOT.top + PLOT_H, stroke: '#e8a0a0', 'stroke-dasharray': '3 3' }, [el('title', {}, [text(`step ${p.step}: loss NaN`)])]));
    }
  parts.push(
    el('path', {
      class: 'series',
      d: seriesPath(points.map((p, i) => [sx(p.step), Number.isFinite(values[i]) ? sy(values[i]) : NaN])),
      fill: 'none',
      stroke: spec.color,
      'stroke-width': 1.6,
      'stroke-linejoin': 'round',
      'stroke-linecap': 'round',
    }),
  );
  return el('g', { class: 'panel', id: `panel-${spec.id}`, transform: `translate(0,${top})`, 'data-y-min': y.lo, 'data-y-max': y.hi, 'data-x-min': x.lo, 'data-x-max': x.hi }, parts);
}

function frame(): string {
  return el('rect', { x: PLOT.left, y: PLOT.top, width: PLOT_W, height: PLOT_H, fill: 'none', stroke: '#999' });
}

function xAxis(x: Axis, sx: (step: number) => number): string[] {
  const bottom = PLOT.top + PLOT_H;
  const label = tickFormatter(x);
  const out: string[] = [];
  for (const t of x.ticks) {
    const px = round(sx(t));
    out.push(
      el('line', { x1: px, x2: px, y1: bottom, y2: bottom + 4, stroke: '#999' }),
      el('text', { class: 'x-tick', x: px, y: bottom + 16, 'text-anchor': 'middle', 'font-size': 11, fill: '#444' }, [text(label(t))]),
    );
  }
  out.push(el('text', { x: PLOT.left + PLOT_W / 2, y: bottom + 36, 'text-anchor': 'middle', 'font-size': 11, fill: '#444' }, [text('step')]));
  return out;
}

/** An SVG path through the points; a NaN y ends a run, and a lone point is a dot (round cap). */
export function seriesPath(xy: readonly (readonly [number, number])[]): string {
  const runs: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length === 1) run.push('h0');
    if (run.length) runs.push(run.join(''));
    run = [];
  };
  for (const [px, py] of xy) {
    if (!Number.isFinite(py)) {
      flush();
      continue;
    }
    run.push(`${run.length ? 'L' : 'M'}${round(px)},${round(py)}`);
  }
  flush();
  return runs.join('');
}

export interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

/** Round bounds and about `count` ticks at 1, 2 or 5 times a power of ten. */
export function niceAxis(lo: number, hi: number, count: number, o: { integer: boolean; fromZero?: boolean }): Axis {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
    if (o.fromZero) lo = 0;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  let step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (o.integer) step = Math.max(1, Math.round(step));
  const clean = (v: number) => Number(v.toPrecision(12));
  const niceLo = clean(Math.floor(lo / step + 1e-9) * step);
  const niceHi = clean(Math.ceil(hi / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let i = 0; niceLo + i * step <= niceHi + step * 1e-9; i++) ticks.push(clean(niceLo + i * step));
  return { lo: niceLo, hi: niceHi, step, ticks };
}

/** Tick labels of one axis, all in one form: 2K / 10K, 0.25, or 3e-4 for small rates. */
export function tickFormatter(axis: Axis): (v: number) => string {
  const big = Math.max(Math.abs(axis.lo), Math.abs(axis.hi));
  const si = big >= 1e9 ? [1e9, 'G'] : big >= 1e6 ? [1e6, 'M'] : big >= 1e4 ? [1e3, 'K'] : undefined;
  if (si) {
    const [div, suffix] = si as [number, string];
    const d = decimalsFor(axis.step / div);
    return (v) => (v === 0 ? '0' : `${(v / div).toFixed(d)}${suffix}`);
  }
  if (big < 1e-2) {
    const stepExp = Math.floor(Math.log10(axis.step) + 1e-9);
    return (v) => (v === 0 ? '0' : trimExponential(v.toExponential(Math.max(0, Math.floor(Math.log10(Math.abs(v)) + 1e-9) - stepExp))));
  }
  const d = decimalsFor(axis.step);
  return (v) => v.toFixed(d);
}

const decimalsFor = (step: number) => Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));

/** 1.50e-4 -> 1.5e-4, 1.0e-3 -> 1e-3, 3e-4 stays */
const trimExponential = (s: string) => s.replace(/\.?0+e/, 'e').replace('e+', 'e');

/** A value as the panel's summary reads it: 2.31, 9.95K, 3e-4. */
export function formatValue(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${Number((v / 1e9).toPrecision(3))}G`;
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e3) return `${Number((v / 1e3).toPrecision(3))}K`;
  if (a !== 0 && a < 1e-2) return trimExponential(v.toExponential(2));
  return String(Number(v.toPrecision(4)));
}

/** [min, max] without spreading (a long run's metrics file outgrows the argument limit) */
function extent(values: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return [lo, hi];
}

const round = (v: number) => Math.round(v * 10) / 10;

// --- a tiny SVG builder: attributes and text escaped in one place ---

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Text content, escaped (children of `el` are markup). */
const text = (s: string) => escapeXml(s);

function el(tag: string, attrs: Record<string, string | number>, children: readonly string[] = []): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(String(v))}"`)
    .join('');
  return children.length ? `<${tag}${a}>${children.join('')}</${tag}>` : `<${tag}${a}/>`;
}

function svgDocument(width: number, height: number, title: string, children: readonly string[]): string {
  const root = el(
    'svg',
    { xmlns: 'http://www.w3.org/2000/svg', width, height, viewBox: `0 0 ${width} ${height}`, 'font-family': FONT },
    [el('title', {}, [text(title)]), ...children.map((c) => `\n${c}`), '\n'],
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}\n`;
}
