// Shared by the page's parts: the data, number formats, colors, the tooltip.
'use strict';
const DATA = JSON.parse(document.getElementById('view-data').textContent);

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let u = 0;
  while (Math.abs(x) >= 1024 && u < units.length - 1) { x /= 1024; u++; }
  return u === 0 ? x + ' B' : x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0) + ' ' + units[u];
}

function fmtSeconds(s) {
  if (s >= 1) return s.toFixed(2) + ' s';
  if (s >= 1e-3) return (s * 1e3).toFixed(2) + ' ms';
  return (s * 1e6).toFixed(1) + ' µs';
}

const fmtUs = (us) => fmtSeconds(us / 1e6);

/** Token counts as they are written in model files: 4M, 64K (binary), else the number. */
function fmtTokens(n) {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return n / (1 << 20) + 'M';
  if (n >= 1024 && n % 1024 === 0) return n / 1024 + 'K';
  return String(n);
}

function fmtCount(n) {
  if (n >= 1e15) return (n / 1e15).toFixed(2) + 'P';
  if (n >= 1e12) return (n / 1e12).toFixed(2) + 'T';
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'K';
  return String(n);
}

const STREAM_COLORS = { compute: '#4e79a7', h2d: '#59a14f', d2h: '#f28e2b', comm: '#b07aa1' };
const KIND_COLORS = {
  param: '#4e79a7', gathered: '#76b7b2', grad: '#e15759', optim: '#f28e2b', ckpt: '#edc948',
  stash: '#b07aa1', act: '#9c755f', chunk: '#59a14f', attn: '#ff9da7', io: '#bab0ac',
};

/** A stable color per compute op, so the same kernel reads the same everywhere. */
function opColor(op, stream) {
  if (stream !== 'compute') return STREAM_COLORS[stream];
  let h = 0;
  for (let i = 0; i < op.length; i++) h = (h * 31 + op.charCodeAt(i)) >>> 0;
  return 'hsl(' + (200 + (h % 70)) + ',' + (45 + (h >> 8) % 30) + '%,' + (38 + (h >> 12) % 22) + '%)';
}

const tooltip = document.getElementById('tooltip');
function showTooltip(text, x, y) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  const w = tooltip.offsetWidth;
  const h = tooltip.offsetHeight;
  tooltip.style.left = Math.min(x + 14, window.innerWidth - w - 8) + 'px';
  tooltip.style.top = (y + 14 + h > window.innerHeight ? y - h - 8 : y + 14) + 'px';
}
function hideTooltip() { tooltip.hidden = true; }

/** A canvas sized to its box at the device's pixel ratio; returns its 2D context in CSS pixels. */
function fitCanvas(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 1000;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.height = height + 'px';
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}
