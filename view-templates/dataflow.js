// One layer's dataflow as SVG, at the positions dagre computed when the page was written.
'use strict';
function drawDataflowSection(d, el, noteEl) {
  const NS = 'http://www.w3.org/2000/svg';
  const make = (tag, attrs) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  noteEl.textContent = 'Instructions of the first forward and the first backward layer loop, with the buffers they read and write: ' +
    d.instrsDrawn + ' of ' + d.instrsTotal + ' instructions drawn' + (d.instrsDrawn < d.instrsTotal ? ' (capped at ' + d.maxNodes + ' nodes to keep the page small: the first instructions of each loop, in program order)' : '') +
    '. Boxes: instructions (stream, and the loops they repeat in); rounded: buffers (space, kind, slots); thick border: collectives.';
  const svg = make('svg', { width: d.width, height: d.height, viewBox: '0 0 ' + d.width + ' ' + d.height });
  const defs = make('defs', {});
  const marker = make('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
  marker.append(make('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#888' }));
  defs.append(marker);
  svg.append(defs);
  for (const e of d.edges) {
    if (!e.points.length) continue;
    const path = 'M' + e.points.map((p) => p[0] + ',' + p[1]).join(' L');
    svg.append(make('path', { d: path, fill: 'none', stroke: '#999', 'stroke-width': 1, 'marker-end': 'url(#arrow)' }));
  }
  for (const n of d.nodes) {
    const g = make('g', { transform: 'translate(' + (n.x - n.w / 2) + ',' + (n.y - n.h / 2) + ')', 'data-node': n.id });
    const isBuf = n.kind === 'buffer';
    const fill = isBuf ? (n.group === 'host' ? '#fff3d6' : '#eef3f8') : '#fff';
    const stroke = isBuf ? '#aaa' : STREAM_COLORS[n.group] || '#444';
    g.append(make('rect', { width: n.w, height: n.h, rx: isBuf ? 10 : 2, fill, stroke, 'stroke-width': n.collective ? 3 : 1.2 }));
    const t1 = make('text', { x: 8, y: 12, 'font-size': 11, 'font-weight': isBuf ? 400 : 600 });
    t1.textContent = n.label;
    const t2 = make('text', { x: 8, y: 25, 'font-size': 10, fill: '#666' });
    t2.textContent = n.detail;
    const title = make('title', {});
    title.textContent = (isBuf ? 'buffer ' : 'instruction ') + n.label + ' (' + n.detail + ')';
    g.append(title, t1, t2);
    svg.append(g);
  }
  el.append(svg);
  // the graph is wider than the page: start where the layer's first instruction is
  const first = d.nodes.find((n) => n.kind === 'instr');
  if (first) {
    el.scrollLeft = Math.max(0, first.x - el.clientWidth / 3);
    el.scrollTop = Math.max(0, first.y - 60);
  }
  el.dataset.nodes = String(d.nodes.length);
}
