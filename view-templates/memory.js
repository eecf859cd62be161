// The memory plot: each arena's reserved bytes over program positions, stacked by buffer kind,
// with the peak and the budget; clicking a position lists the buffers live there.
'use strict';
function drawMemorySection(m, t, el, liveEl) {
  const H = 190, LEFT = 76, TOP = 8, BOTTOM = 22;
  let areas = 0;
  for (const sp of m.spaces) {
    const title = document.createElement('div');
    title.className = 'note';
    title.textContent = (sp.space === 'gpu' ? 'GPU arena' : 'pinned host arena') + ': peak ' + fmtBytes(sp.peak.bytes + sp.beside) +
      ' at position ' + sp.peak.position + ' of ' + m.positions + ', budget ' + fmtBytes(sp.budget) +
      (sp.beside ? ' (collectives beside the arena: ' + fmtBytes(sp.beside) + ', drawn on top)' : '');
    const legend = document.createElement('div');
    legend.className = 'note';
    legend.innerHTML = sp.kinds.map((k) => '<span style="color:' + (KIND_COLORS[k] || '#888') + '">■</span> ' + k).join(' &nbsp; ') +
      ' &nbsp; <span style="color:#d62728">- -</span> budget';
    const canvas = document.createElement('canvas');
    canvas.dataset.space = sp.space;
    el.append(title, legend, canvas);
    const { ctx, width } = fitCanvas(canvas, H);
    const plotW = width - LEFT - 8;
    // a budget far above the usage would flatten it: then the plot scales to the usage and says so
    const top = sp.peak.bytes + sp.beside;
    const budgetShown = sp.budget <= 4 * top;
    const yMax = (budgetShown ? Math.max(sp.budget, top) : top) * 1.08 || 1;
    const X = (p) => LEFT + (p / Math.max(1, m.positions)) * plotW;
    const Y = (b) => TOP + (1 - b / yMax) * (H - TOP - BOTTOM);
    // stacked steps: kind k's band lies between the sums of kinds before it and through it
    const layers = sp.kinds.map(() => []);
    for (let i = 0; i < sp.at.length; i++) {
      let base = 0;
      sp.kinds.forEach((_, k) => { layers[k].push([base, base + sp.bytes[i][k]]); base += sp.bytes[i][k]; });
    }
    sp.kinds.forEach((kind, k) => {
      ctx.fillStyle = KIND_COLORS[kind] || '#888';
      for (let i = 0; i < sp.at.length; i++) {
        const [lo, hi] = layers[k][i];
        if (hi <= lo) continue;
        const x0 = X(sp.at[i]), x1 = X(i + 1 < sp.at.length ? sp.at[i + 1] : m.positions);
        ctx.fillRect(x0, Y(hi), Math.max(1, x1 - x0), Y(lo) - Y(hi));
        areas++;
      }
    });
    if (sp.beside) {
      ctx.fillStyle = 'rgba(120,120,120,0.5)';
      for (let i = 0; i < sp.at.length; i++) {
        const total = sp.bytes[i].reduce((a, b) => a + b, 0);
        const x0 = X(sp.at[i]), x1 = X(i + 1 < sp.at.length ? sp.at[i + 1] : m.positions);
        ctx.fillRect(x0, Y(total + sp.beside), Math.max(1, x1 - x0), Y(total) - Y(total + sp.beside));
      }
    }
    // layer loops along the positions: a position inside one stands for every iteration
    ctx.font = '10px system-ui, sans-serif';
    for (const l of m.layerLoops) {
      const x0 = X(l.first), x1 = X(l.last + 1);
      ctx.fillStyle = l.reverse ? 'rgba(230,150,60,0.10)' : 'rgba(80,120,170,0.10)';
      ctx.fillRect(x0, TOP, x1 - x0, H - TOP - BOTTOM);
      ctx.fillStyle = '#555';
      if (x1 - x0 > 60) ctx.fillText((l.reverse ? 'backward' : 'forward') + ' layers ×' + l.trips, x0 + 3, H - BOTTOM + 9, x1 - x0 - 6);
    }
    // axes, budget, peak
    ctx.strokeStyle = '#888';
    ctx.beginPath(); ctx.moveTo(LEFT, TOP); ctx.lineTo(LEFT, H - BOTTOM); ctx.lineTo(LEFT + plotW, H - BOTTOM); ctx.stroke();
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#444';
    ctx.textBaseline = 'middle';
    for (let j = 0; j <= 4; j++) ctx.fillText(fmtBytes((yMax * j) / 4), 2, Y((yMax * j) / 4));
    ctx.fillText('program position →', LEFT + plotW - 110, H - 8);
    if (budgetShown) {
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = '#d62728';
      ctx.beginPath(); ctx.moveTo(LEFT, Y(sp.budget)); ctx.lineTo(LEFT + plotW, Y(sp.budget)); ctx.stroke();
      ctx.setLineDash([]);
    } else {
      ctx.fillStyle = '#d62728';
      ctx.fillText('budget ' + fmtBytes(sp.budget) + ' is above the scale', LEFT + plotW - 220, TOP + 6);
    }
    canvas.dataset.budgetShown = String(budgetShown);
    const px = X(sp.peak.position);
    ctx.strokeStyle = '#000';
    ctx.beginPath(); ctx.moveTo(px, Y(sp.peak.bytes + sp.beside) - 6); ctx.lineTo(px, H - BOTTOM); ctx.stroke();
    ctx.fillStyle = '#000';
    ctx.fillText('peak ' + fmtBytes(sp.peak.bytes + sp.beside), Math.min(px + 4, LEFT + plotW - 90), Math.max(TOP + 6, Y(sp.peak.bytes + sp.beside) - 6));
    canvas.addEventListener('click', (ev) => {
      const r = canvas.getBoundingClientRect();
      const pos = Math.max(0, Math.min(m.positions - 1, Math.floor(((ev.clientX - r.left - LEFT) / plotW) * m.positions)));
      listLive(sp.space, pos);
    });
  }
  el.dataset.areas = String(areas);
  el.dataset.drawn = 'true';

  function listLive(space, pos) {
    const live = m.buffers.filter((b) => b.space === space && b.first <= pos && pos <= b.last).sort((a, b) => b.size - a.size);
    const row = t.instrs[pos];
    const total = live.reduce((a, b) => a + b.size, 0);
    liveEl.innerHTML = '';
    const p = document.createElement('div');
    p.textContent = space + ' at position ' + pos + (row ? ' (' + row.op + ' ' + row.id + ' on ' + row.stream + (row.loops.length ? ', in ' + row.loops.join(' > ') : '') + ')' : '') +
      ': ' + live.length + ' buffers live, ' + fmtBytes(total);
    const table = document.createElement('table');
    table.className = 'live';
    table.innerHTML = '<tr><th>buffer</th><th>kind</th><th>size</th><th>offset</th><th>live</th></tr>';
    for (const b of live) {
      const tr = document.createElement('tr');
      for (const [v, num] of [[b.buf], [b.kind], [fmtBytes(b.size), 1], [fmtBytes(b.offset), 1], [b.first + '..' + b.last]]) {
        const td = document.createElement('td');
        td.textContent = v;
        if (num) td.className = 'num';
        tr.append(td);
      }
      table.append(tr);
    }
    liveEl.append(p, table);
    liveEl.dataset.position = String(pos);
  }
}
