// Small hand-built schedules in the shape of an FPDT program, for the planner, the simulator,
// the exporters and the listing, independent of the lowering.
import { BASE_CONFIG } from '../../compiler/config.js';
import type { DeviceProfile } from '../../compiler/schedule/devices.js';
import { aff, v, type Buffer, type EventOp, type Instr, type Item, type Loop, type Ref, type Schedule, type StreamName } from '../../compiler/schedule/types.js';
import type { OpName } from '../../compiler/schedule/ops.js';

export const ref = (buf: string, off: Ref['off'] | number, len: number, slot?: Ref['slot']): Ref => ({
  buf,
  off: typeof off === 'number' ? aff(off) : off,
  len,
  ...(slot ? { slot } : {}),
});

let counter = 0;
export function instr(stream: StreamName, op: OpName, reads: Ref[], writes: Ref[], extra: Partial<Instr> = {}): Instr {
  return { kind: 'instr', id: extra.id ?? `${op}_${counter++}`, stream, op, reads, writes, attrs: {}, flops: 0, bytes: 0, ...extra };
}
export const record = (stream: StreamName, event: string, index?: EventOp['index']): EventOp => ({ kind: 'record', id: `rec_${counter++}`, stream, event, ...(index ? { index } : {}) });
export const wait = (stream: StreamName, event: string, index?: EventOp['index']): EventOp => ({ kind: 'wait', id: `wait_${counter++}`, stream, event, ...(index ? { index } : {}) });
export const loop = (var_: string, from: Loop['from'] | number, to: Loop['to'] | number, role: Loop['role'], body: Item[], reverse = false): Loop => ({
  kind: 'loop',
  id: `loop_${var_}`,
  var: var_,
  from: typeof from === 'number' ? aff(from) : from,
  to: typeof to === 'number' ? aff(to) : to,
  role,
  body,
  ...(reverse ? { reverse } : {}),
});

export const buffer = (id: string, space: Buffer['space'], kind: Buffer['kind'], shape: number[], slots = 1, dtype: Buffer['dtype'] = 'bf16'): Buffer => ({
  id,
  space,
  dtype,
  elems: shape.reduce((a, b) => a * b, 1),
  slots,
  kind,
  shape,
});

export function scheduleOf(body: Item[], buffers: Buffer[], events: Record<string, number> = {}, extra: Partial<Schedule> = {}): Schedule {
  return { model: 'tiny', config: { ...BASE_CONFIG, seq: 4096, chunk: 1024 }, world: 1, chunk: 1024, chunks: 4, layers: 1, buffers, events, body, sizes: {}, ...extra };
}

/** A device with round rates and no fixed costs, so that expected times are easy to write. */
export function roundDevice(over: Partial<DeviceProfile> = {}): DeviceProfile {
  return {
    name: 'round',
    gpuMemTotalBytes: 2 ** 30,
    gpuMemBytes: 2 ** 30,
    hostMemBytes: 2 ** 32,
    h2dBps: 1e9,
    d2hBps: 1e9,
    bothWaysBps: 2e9,
    nvlinkBps: 1e9,
    interNodeBps: 1e9,
    gpusPerNode: 8,
    hbmBps: 1e12,
    gemmFlops: 1e12,
    attnEfficiency: 1,
    attnBwdEfficiency: 1,
    attnKernel: 'sm90',
    peakFlops: 1e12,
    kernelOverheadS: 0,
    copyOverheadS: 0,
    collectiveLatencyS: 0,
    ...over,
  };
}

export interface FpdtLikeOptions {
  layers?: number;
  chunks?: number;
  /** tokens per chunk and hidden size */
  tokens?: number;
  hidden?: number;
}

/**
 * L layers of: per chunk i, a projection (compute), its k/v offloaded to host (d2h), then kv
 * chunks j = 0..i fetched back (h2d) into a 2-slot buffer, each slot guarded by a ready and a
 * free event, and one attention block per j; then a backward layer loop in reverse that
 * fetches each chunk's k/v back once and runs its gradient kernel.
 */
export function fpdtLike(o: FpdtLikeOptions = {}): Schedule {
  const L = o.layers ?? 2;
  const u = o.chunks ?? 4;
  const C = o.tokens ?? 1024;
  const D = o.hidden ?? 256;
  const kvElems = C * 2 * D;
  const buffers = [
    buffer('w', 'gpu', 'param', [L, D, 3 * D]),
    buffer('ckpt', 'gpu', 'ckpt', [L, u * C, D]),
    buffer('x', 'gpu', 'act', [u * C, D]),
    buffer('q', 'gpu', 'chunk', [C, D]),
    buffer('kv_new', 'gpu', 'chunk', [C, 2 * D]),
    buffer('kv', 'gpu', 'chunk', [C, 2 * D], 2),
    buffer('o', 'gpu', 'chunk', [C, D], 1, 'fp32'),
    buffer('kv_host', 'host', 'stash', [u, C, 2 * D]),
    buffer('dx', 'gpu', 'chunk', [C, D]),
  ];
  const gemm = 2 * C * D * 3 * D;
  const block = 4 * C * C * D;
  const kvBytes = kvElems * 2;
  const fwd = loop('l', 0, L, 'layer', [
    instr('compute', 'copy', [ref('x', 0, u * C * D)], [ref('ckpt', v('l', u * C * D), u * C * D)], { id: 'save_ckpt', attrs: { dir: 'd2d' }, bytes: 2 * u * C * D * 2 }),
    loop('i', 0, u, 'chunk', [
      instr('compute', 'linear', [ref('x', v('i', C * D), C * D), ref('w', v('l', D * 3 * D), D * 3 * D)], [ref('q', 0, C * D), ref('kv_new', 0, kvElems)], { id: 'qkv_proj', flops: gemm, bytes: 2 * (C * D + 3 * D * D + 3 * C * D) }),
      record('compute', 'kv_made'),
      wait('d2h', 'kv_made'),
      instr('d2h', 'copy', [ref('kv_new', 0, kvElems)], [ref('kv_host', v('i', kvElems), kvElems)], { id: 'offload_kv', attrs: { dir: 'd2h' }, bytes: 2 * kvBytes }),
      record('d2h', 'kv_saved'),
      wait('h2d', 'kv_saved'),
      loop('j', 0, v('i', 1, 1), 'kv', [
        wait('h2d', 'kv_free', v('j')),
        instr('h2d', 'copy', [ref('kv_host', v('j', kvElems), kvElems)], [ref('kv', 0, kvElems, v('j'))], { id: 'fetch_kv', attrs: { dir: 'h2d' }, bytes: 2 * kvBytes }),
        record('h2d', 'kv_ready', v('j')),
        wait('compute', 'kv_ready', v('j')),
        instr('compute', 'attn_fwd_block', [ref('q', 0, C * D), ref('kv', 0, kvElems, v('j')), ref('o', 0, C * D)], [ref('o', 0, C * D)], { id: 'attn_block', flops: block, bytes: 2 * (C * D + kvElems) + 8 * C * D }),
        record('compute', 'kv_free', v('j')),
      ]),
      instr('compute', 'add', [ref('o', 0, C * D)], [ref('x', v('i', C * D), C * D)], { id: 'residual', bytes: 4 * C * D + 4 * C * D }),
    ]),
  ]);
  const bwd = loop(
    'l',
    0,
    L,
    'layer',
    [
      loop('i', 0, u, 'chunk', [
        wait('h2d', 'kv_free', v('i')),
        instr('h2d', 'copy', [ref('kv_host', v('i', kvElems), kvElems)], [ref('kv', 0, kvElems, v('i'))], { id: 'fetch_kv_bwd', attrs: { dir: 'h2d' }, bytes: 2 * kvBytes }),
        record('h2d', 'kv_ready', v('i')),
        wait('compute', 'kv_ready', v('i')),
        instr('compute', 'attn_bwd_block', [ref('kv', 0, kvElems, v('i')), ref('ckpt', v('l', u * C * D), C * D)], [ref('dx', 0, C * D)], { id: 'attn_bwd', flops: 2.5 * block, bytes: 4 * kvBytes }),
        record('compute', 'kv_free', v('i')),
      ]),
    ],
    true,
  );
  return scheduleOf([fwd, bwd], buffers, { kv_made: 1, kv_saved: 1, kv_ready: 2, kv_free: 2 }, {
    model: 'fpdt-like',
    layers: L,
    chunks: u,
    chunk: C,
    config: { ...BASE_CONFIG, seq: u * C, chunk: C },
    sizes: { D, L, C },
  });
}
