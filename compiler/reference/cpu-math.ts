// The float64 math of every op, forward and backward, on plain row-major arrays with
// explicit sizes and positions, so that an executor can call it on chunk slices.
export * from './cpu-dense.js';
export * from './cpu-norms.js';
export * from './cpu-pointwise.js';
export * from './cpu-rope.js';
export * from './cpu-attention.js';
export * from './cpu-loss.js';
export * from './cpu-adamw.js';
