// The timeline: one lane per stream, the loop iterations as bands above them, the compute
// stream's exposed waits marked. The data is the simulator's window (see the note); zoom with
// the wheel, pan by dragging. Sets data-* on the canvas after each draw, for tests and people.
'use strict';
function drawTimelineSection(t, h, canvas, noteEl) {
  const F = 8; // fields per span, as timeline-data.ts writes them
  const n = t.spans.length / F;
  const LABEL_W = 76;
  const AXIS_H = 18;
  const BAND_H = 18;
  const LANE_H = 46;
  const lanesTop = AXIS_H + 2 * BAND_H + 4;
  const height = lanesTop + t.streams.length * LANE_H + 4;
  const S = t.spans;
  // spans of each stream in start order (a stream runs one span at a time)
  const byStream = t.streams.map(() => []);
  for (let k = 0; k < n; k++) byStream[S[k * F + 1]].push(k);
  for (const list of byStream) list.sort((a, b) => S[a * F + 2] - S[b * F + 2]);
  const hidden = t.hidden;
  let view = { t0: 0, t1: Math.max(t.windowEnd, 1e-3) };

  const dirOf = (b) => (b.reverse ? 'backward' : 'forward');
  const layerText = (b) => {
    const missing = b.trips - b.simulated;
    const each = b.extrapolatedEach !== undefined ? ' at ' + fmtUs(b.extrapolatedEach) + ' each' : '';
    return dirOf(b) + ' layer loop ×' + b.trips + ': layer ' + b.index + ' drawn; ' + b.simulated + ' simulated' +
      (missing > 0 ? ', ' + missing + ' extrapolated' + each : '');
  };
  noteEl.textContent = t.extrapolated
    ? 'The simulator runs ' + t.simulatedLayers + ' of the ' + t.layers + ' iterations of every layer loop and counts each of the rest ' +
      'as its last simulated one (predicted step ' + fmtSeconds(h.stepSeconds) + '). Drawn: the ' + fmtUs(t.windowEnd) +
      ' window with the prologue, the first iteration of each layer loop, and the epilogue; grey hatching is a simulated iteration not drawn.'
    : 'All ' + t.layers + ' layers simulated; drawn: the first iteration of each layer loop, the prologue and the epilogue (' + fmtUs(t.windowEnd) + ').';

  function draw() {
    const { ctx, width } = fitCanvas(canvas, height);
    const plotW = width - LABEL_W;
    const scale = plotW / (view.t1 - view.t0);
    const X = (us) => LABEL_W + (us - view.t0) * scale;
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    // time axis
    const span = view.t1 - view.t0;
    const step = Math.pow(10, Math.floor(Math.log10(span / 6)));
    const tick = span / step > 30 ? step * 5 : span / step > 12 ? step * 2 : step;
    ctx.fillStyle = '#555';
    ctx.strokeStyle = '#eee';
    for (let x = Math.ceil(view.t0 / tick) * tick; x <= view.t1; x += tick) {
      const px = X(x);
      ctx.beginPath(); ctx.moveTo(px, AXIS_H); ctx.lineTo(px, height); ctx.stroke();
      ctx.fillText(fmtUs(x), px + 2, AXIS_H / 2);
    }
    // loop bands
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL_W, 0, plotW, height); ctx.clip();
    for (const b of t.bands) {
      const y = AXIS_H + (b.role === 'layer' ? 0 : BAND_H);
      const x0 = X(b.start), x1 = X(b.end);
      if (x1 < LABEL_W || x0 > width) continue;
      ctx.fillStyle = b.role === 'layer' ? (b.reverse ? '#f3e3d3' : '#dfe9f3') : (b.index % 2 ? '#e8e8e8' : '#d6d6d6');
      ctx.fillRect(x0, y + 1, Math.max(1, x1 - x0), BAND_H - 2);
      const label = b.role === 'layer' ? layerText(b) : 'chunk ' + b.index + '/' + b.trips;
      if (x1 - x0 > 40) { ctx.fillStyle = '#333'; ctx.fillText(label, Math.max(x0, LABEL_W) + 3, y + BAND_H / 2, x1 - Math.max(x0, LABEL_W) - 6); }
    }
    for (const g of hidden) {
      const x0 = X(g.start), x1 = X(g.end);
      ctx.fillStyle = '#f4f4f4';
      ctx.fillRect(x0, AXIS_H + 1, x1 - x0, height - AXIS_H - 1);
      ctx.strokeStyle = '#ccc';
      for (let x = x0 - height; x < x1; x += 8) { ctx.beginPath(); ctx.moveTo(Math.max(x, x0), AXIS_H + Math.max(0, x0 - x)); ctx.lineTo(Math.min(x + height, x1), AXIS_H + Math.min(height, x1 - x)); ctx.stroke(); }
      if (x1 - x0 > 60) { ctx.fillStyle = '#666'; ctx.fillText(g.layers + ' layer iteration' + (g.layers === 1 ? '' : 's') + ' simulated, not drawn', x0 + 3, AXIS_H + BAND_H / 2, x1 - x0 - 6); }
    }
    // lanes
    const counts = {};
    t.streams.forEach((st, lane) => {
      const y = lanesTop + lane * LANE_H;
      let drawn = 0;
      for (const k of byStream[lane]) {
        const a = S[k * F + 2], e = S[k * F + 3];
        if (e < view.t0 || a > view.t1) continue;
        const row = t.instrs[S[k * F]];
        ctx.fillStyle = opColor(row ? row.op : '?', st);
        const x0 = X(a);
        ctx.fillRect(x0, y + 4, Math.max(0.6, X(e) - x0), LANE_H - 14);
        drawn++;
      }
      counts[st] = drawn;
      if (st === 'compute') {
        for (const g of t.exposed) {
          if (g.end < view.t0 || g.start > view.t1) continue;
          ctx.fillStyle = g.cause === 'comm' ? '#8e44ad' : '#d62728';
          ctx.fillRect(X(g.start), y + LANE_H - 9, Math.max(1, X(g.end) - X(g.start)), 6);
        }
      }
    });
    ctx.restore();
    ctx.fillStyle = '#222';
    ctx.fillText('layers', 4, AXIS_H + BAND_H / 2);
    ctx.fillText('chunks', 4, AXIS_H + BAND_H * 1.5);
    t.streams.forEach((st, lane) => {
      const y = lanesTop + lane * LANE_H;
      ctx.fillStyle = STREAM_COLORS[st];
      ctx.fillRect(0, y + 4, 4, LANE_H - 14);
      ctx.fillStyle = '#222';
      ctx.fillText(st, 8, y + LANE_H / 2 - 3);
      ctx.strokeStyle = '#ddd';
      ctx.beginPath(); ctx.moveTo(0, y + LANE_H - 1); ctx.lineTo(width, y + LANE_H - 1); ctx.stroke();
    });
    canvas.dataset.rects = JSON.stringify(counts);
    canvas.dataset.lanes = String(t.streams.length);
    canvas.dataset.viewStart = String(view.t0);
    canvas.dataset.viewEnd = String(view.t1);
    canvas.dataset.layout = JSON.stringify({ labelWidth: LABEL_W, lanesTop, laneHeight: LANE_H });
  }

  const timeAt = (px) => view.t0 + ((px - LABEL_W) / (canvas.clientWidth - LABEL_W)) * (view.t1 - view.t0);

  /** The span under (px, py), or undefined. */
  function spanAt(px, py) {
    const lane = Math.floor((py - lanesTop) / LANE_H);
    if (lane < 0 || lane >= t.streams.length || px < LABEL_W) return undefined;
    const tm = timeAt(px);
    const slack = 2 * (view.t1 - view.t0) / (canvas.clientWidth - LABEL_W);
    const list = byStream[lane];
    let lo = 0, hi = list.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (S[list[m] * F + 2] <= tm + slack) lo = m + 1; else hi = m; }
    for (let j = lo - 1; j >= 0 && j >= lo - 3; j--) {
      const k = list[j];
      if (S[k * F + 3] >= tm - slack) return k;
    }
    return undefined;
  }

  function spanText(k) {
    const row = t.instrs[S[k * F]] || { op: '?', id: '?', reads: [], writes: [], waits: [], records: [], loops: [] };
    const idx = ['layer', 'chunk', 'kv', 'q'].map((r, j) => (S[k * F + 4 + j] >= 0 ? r + ' ' + S[k * F + 4 + j] : '')).filter(Boolean).join(', ');
    const a = S[k * F + 2], e = S[k * F + 3];
    return [
      row.op + '  (' + row.id + ', ' + row.stream + ')',
      'start ' + fmtUs(a) + ', takes ' + fmtUs(e - a) + (idx ? ', ' + idx : ''),
      'reads   ' + (row.reads.join(', ') || '-'),
      'writes  ' + (row.writes.join(', ') || '-'),
      'bytes   ' + fmtBytes(row.bytes) + ', FLOPs ' + fmtCount(row.flops),
      'waits   ' + (row.waits.join(', ') || '-'),
      'records ' + (row.records.join(', ') || '-'),
      row.loops.length ? 'in loops ' + row.loops.join(' > ') : 'outside loops',
    ].join('\n');
  }

  function bandAt(px, py) {
    if (py < AXIS_H || py >= AXIS_H + 2 * BAND_H || px < LABEL_W) return undefined;
    const role = py < AXIS_H + BAND_H ? 'layer' : 'chunk';
    const tm = timeAt(px);
    return t.bands.find((b) => b.role === role && b.start <= tm && tm <= b.end);
  }

  let drag;
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    const at = timeAt(ev.clientX - r.left);
    const f = Math.exp(ev.deltaY * 0.002);
    const w = Math.max(1e-3, Math.min(t.windowEnd * 1.2, (view.t1 - view.t0) * f));
    const frac = (at - view.t0) / (view.t1 - view.t0);
    view = { t0: at - frac * w, t1: at - frac * w + w };
    draw();
  }, { passive: false });
  canvas.addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, view }; canvas.style.cursor = 'grabbing'; });
  window.addEventListener('mouseup', () => { drag = undefined; canvas.style.cursor = ''; });
  canvas.addEventListener('dblclick', () => { view = { t0: 0, t1: Math.max(t.windowEnd, 1e-3) }; draw(); });
  canvas.addEventListener('mousemove', (ev) => {
    const r = canvas.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    if (drag) {
      const dt = ((ev.clientX - drag.x) / (canvas.clientWidth - LABEL_W)) * (drag.view.t1 - drag.view.t0);
      view = { t0: drag.view.t0 - dt, t1: drag.view.t1 - dt };
      draw();
      return;
    }
    const k = spanAt(px, py);
    if (k !== undefined) return showTooltip(spanText(k), ev.clientX, ev.clientY);
    const b = bandAt(px, py);
    if (b) return showTooltip(b.role === 'layer' ? layerText(b) : 'chunk ' + b.index + ' of ' + b.trips + ' (' + fmtUs(b.end - b.start) + ')', ev.clientX, ev.clientY);
    hideTooltip();
  });
  canvas.addEventListener('mouseleave', hideTooltip);
  window.addEventListener('resize', draw);
  draw();
}
