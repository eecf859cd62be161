// The header: what was compiled, at which sizes, and what the compiler predicts for it.
'use strict';
function drawHeader(h, el) {
  const pct = (x) => (100 * x).toFixed(1) + '%';
  const sizes = Object.entries(h.sizes).map(([k, v]) => k + '=' + v).join(' ');
  const rows = [
    ['model', h.model + (h.params ? ' (' + fmtCount(h.params) + ' params)' : '')],
    ['sizes', sizes],
    ['sequence', fmtTokens(h.seq) + ' tokens, ' + h.chunks + ' chunks of ' + fmtTokens(h.chunk)],
    ['ranks', 'sp ' + h.sp + ' × dp ' + h.dp + ' = ' + h.world],
    ['offload', (h.offload ? 'on' : 'off') + ', checkpoints ' + h.checkpoint + ', ZeRO-' + h.zero],
    ['device', h.device],
    ['step time', fmtSeconds(h.stepSeconds) + (h.extrapolated ? ' (' + h.windowLayers + ' of ' + h.layers + ' layers simulated, extrapolated)' : '')],
    ['MFU', h.mfu === undefined ? '-' : pct(h.mfu)],
    ['exposed', 'copy ' + fmtSeconds(h.exposedCopySeconds) + ', comm ' + fmtSeconds(h.exposedCommSeconds)],
    ['GPU / rank', fmtBytes(h.gpu.need) + ' of ' + fmtBytes(h.gpu.budget) + ' (' + pct(h.gpu.need / h.gpu.budget) + ')'],
    ['host / rank', fmtBytes(h.host.need) + ' of ' + fmtBytes(h.host.budget) + ' (' + pct(h.host.need / h.host.budget) + ')'],
    ['kept attention', h.keptLayers + ' of ' + h.layers + ' layers'],
  ];
  const title = document.createElement('h1');
  title.textContent = 'fpdtc plan: ' + h.model;
  const dl = document.createElement('dl');
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
  el.append(title, dl);
  if (!h.fits) {
    const p = document.createElement('p');
    p.className = 'bad';
    p.textContent = 'does not fit: ' + h.advice;
    el.append(p);
  }
}
