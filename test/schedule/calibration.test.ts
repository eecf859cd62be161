import { expect } from 'chai';
import { UserError } from '../../compiler/errors.js';
import { attentionRate, checkCalibration, curveRate, loadCalibration } from '../../compiler/schedule/calibration.js';
import { instrSeconds } from '../../compiler/schedule/cost.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import type { Instr } from '../../compiler/schedule/types.js';
import type { OpName } from '../../compiler/schedule/ops.js';

const doc = (over: Record<string, unknown> = {}) => ({
  format: 'fpdtc calibration',
  version: 1,
  device: 'h200',
  source: { date: '2026-11-30', machine: 'test' },
  attention: [{ kernel: 'sm90', headDim: 64, dir: 'fwd', causal: false, points: [[1024, 100], [4096, 300]] }],
  ...over,
});

const block = (op: OpName, attrs: Record<string, number | boolean>): Instr => ({
  kind: 'instr', id: 'b', stream: 'compute', op, reads: [], writes: [], attrs, flops: 4e12, bytes: 0,
});

describe('schedule/calibration', () => {
  it('interpolates a curve in log2(length) and clamps at its ends', () => {
    const pts = [[1024, 100], [4096, 300]] as const;
    expect(curveRate(pts, 512)).to.equal(100);
    expect(curveRate(pts, 2048)).to.be.closeTo(200, 1e-9);
    expect(curveRate(pts, 1 << 20)).to.equal(300);
  });

  it('finds the curve of a kernel, head dim, direction and form', () => {
    const c = checkCalibration(doc(), 'x.json');
    expect(attentionRate(c.attention, { kernel: 'sm90', headDim: 64, dir: 'fwd', causal: false, len: 1024 })).to.equal(100);
    expect(attentionRate(c.attention, { kernel: 'sm90', headDim: 64, dir: 'fwd', causal: true, len: 1024 })).to.equal(undefined);
    expect(attentionRate(c.attention, { kernel: 'mma', headDim: 64, dir: 'fwd', causal: false, len: 1024 })).to.equal(undefined);
  });

  it('refuses a file that breaks the format, naming the file and the fix', () => {
    const bad = [
      doc({ version: 2 }),
      doc({ source: { date: 'yesterday' } }),
      doc({ h2dBps: -1 }),
      doc({ elementwiseBps: { add: 'fast' } }),
      doc({ elementwiseBps: { add_bf16: 1e12 } }), // not an op of the catalog
      doc({ attention: [{ kernel: 'wgmma', headDim: 64, dir: 'fwd', causal: true, points: [[1, 1]] }] }),
      doc({ attention: [{ kernel: 'sm90', headDim: 64, dir: 'fwd', causal: true, points: [[4096, 1], [1024, 2]] }] }),
    ];
    for (const d of bad) {
      expect(() => checkCalibration(d, 'x.json')).to.throw(UserError, /^calibration x\.json: .*regenerate it with test\/bench\/calibrate\.py$/);
    }
  });

  it('the committed h200 file is dated, names its source and covers head dims 64 and 128 both ways', () => {
    const c = loadCalibration('h200.json');
    expect(c.device).to.equal('h200');
    expect(c.source.date).to.match(/^\d{4}-\d\d-\d\d/);
    expect(c.source.machine).to.be.a('string');
    for (const kernel of ['sm90', 'mma'] as const)
      for (const headDim of [64, 128])
        for (const dir of ['fwd', 'bwd'] as const)
          for (const causal of [true, false]) expect(attentionRate(c.attention, { kernel, headDim, dir, causal, len: 16384 }), `${kernel} ${headDim} ${dir} ${causal}`).to.be.a('number');
  });

  it('prices blocks by the measured curve of the kernel the program runs', () => {
    const h200 = deviceProfile('h200');
    const cal = h200.calibration!;
    const at = { lq: 16384, lk: 16384, d: 64, causal: false };
    const rate = (kernel: 'sm90' | 'mma', dir: 'fwd' | 'bwd') => attentionRate(cal.attention, { kernel, headDim: 64, dir, causal: false, len: 16384 })!;
    const secs = (op: OpName, attrs: Record<string, number | boolean>) => instrSeconds(block(op, attrs), h200, { world: 1 }) - h200.kernelOverheadS;
    expect(secs('attn_fwd_block', at)).to.be.closeTo(4e12 / rate('sm90', 'fwd'), 1e-12);
    expect(secs('attn_bwd_block', at)).to.be.closeTo(4e12 / rate('sm90', 'bwd'), 1e-12);
    // packed documents and q lengths off the wgmma tile run the mma.sync kernel
    expect(secs('attn_fwd_block', { ...at, packed: true })).to.be.closeTo(4e12 / rate('mma', 'fwd'), 1e-12);
    expect(secs('attn_bwd_block', { ...at, lq: 16383, lk: 16383 })).to.be.closeTo(4e12 / attentionRate(cal.attention, { kernel: 'mma', headDim: 64, dir: 'bwd', causal: false, len: 16383 })!, 1e-12);
    // a head dim no curve covers: the profile's fraction of the GEMM rate
    expect(secs('attn_fwd_block', { ...at, d: 96 })).to.be.closeTo(4e12 / (h200.gemmFlops * h200.attnEfficiency), 1e-12);
  });

  it('lays the file over h200 in full, over h100 only for the chip, and leaves a100 hand-written', () => {
    const cal = loadCalibration('h200.json');
    const h200 = deviceProfile('h200');
    const hand = deviceProfile('h200', { calibration: false });
    expect(hand.calibration).to.equal(undefined);
    expect(h200.h2dBps).to.equal(cal.h2dBps ?? hand.h2dBps);
    expect(h200.elementwiseBps).to.equal(cal.elementwiseBps);
    const h100 = deviceProfile('h100');
    expect(h100.calibration).to.equal(cal);
    expect(h100.h2dBps).to.equal(hand.h2dBps);
    expect(h100.elementwiseBps).to.equal(undefined);
    expect(deviceProfile('a100-80g').calibration).to.equal(undefined);
  });

  it('prices element-wise kernels at their measured rate, others at the default', () => {
    const h200 = deviceProfile('h200');
    const ew = h200.elementwiseBps!;
    const secs = (op: OpName) => instrSeconds({ ...block(op, {}), flops: 0, bytes: 1e9 }, h200, { world: 1 }) - h200.kernelOverheadS;
    expect(secs('add')).to.be.closeTo(1e9 / (ew.add ?? ew.default!), 1e-15);
    expect(secs('gelu')).to.be.closeTo(1e9 / ew.default!, 1e-15); // not in the file
    expect(secs('attn_finalize')).to.be.closeTo(1e9 / (ew.attn_finalize ?? ew.default!), 1e-15);
  });
});
