// Ranks without a GPU for the checkpoint tests: programs that hold ZeRO-3 shards of parameters,
// AdamW moments and a step count in plain arrays, behind the methods the training code calls.
import type { ParamInfo, Moment } from '../../runtime/load.js';
import type { RankSet } from '../../compiler/train/ranks.js';

export interface FakeParam {
  name: string;
  shape: number[];
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

class FakeProgram {
  readonly values: Float32Array[];
  readonly moments: Record<Moment, Float32Array[]>;
  step = 0;
  private readonly infos: ParamInfo[];

  constructor(params: readonly FakeParam[], rank: number, world: number) {
    this.infos = params.map((p, index) => {
      const n = numel(p.shape), per = Math.ceil(n / world);
      const lo = Math.min(n, rank * per), hi = Math.min(n, lo + per);
      return { index, name: p.name, shape: [...p.shape], shardOffset: lo, shardLength: hi - lo };
    });
    const zeros = () => this.infos.map((x) => new Float32Array(x.shardLength));
    this.values = zeros();
    this.moments = { exp_avg: zeros(), exp_avg_sq: zeros() };
  }

  params(): ParamInfo[] {
    return this.infos;
  }
  setParam(i: number, v: Float32Array): void {
    if (v.length !== this.infos[i].shardLength) throw new Error(`setParam ${i}: ${v.length} values for a shard of ${this.infos[i].shardLength}`);
    this.values[i] = Float32Array.from(v);
  }
  getParam(i: number): Float32Array {
    return Float32Array.from(this.values[i]);
  }
  getGrad(i: number): Float32Array {
    return this.values[i].map((x) => -x);
  }
  getState(i: number, m: Moment): Float32Array {
    return Float32Array.from(this.moments[m][i]);
  }
  setState(i: number, m: Moment, v: Float32Array): void {
    if (v.length !== this.infos[i].shardLength) throw new Error(`setState ${i}: wrong length`);
    this.moments[m][i] = Float32Array.from(v);
  }
  getStep(): number {
    return this.step;
  }
  setStep(s: number): void {
    this.step = s;
  }
}

/**
 * Every rank of a world of `world` in this process, as the local backend holds them; or, with
 * `rank`, that rank alone, as a process of a multi-process world holds it.
 */
export class FakeRanks {
  readonly programs: FakeProgram[];
  readonly backend: 'local' | 'nccl';
  constructor(readonly specs: readonly FakeParam[], readonly world: number, rank?: number) {
    this.programs = rank === undefined ? Array.from({ length: world }, (_, r) => new FakeProgram(specs, r, world)) : [new FakeProgram(specs, rank, world)];
    this.backend = rank === undefined ? 'local' : 'nccl';
  }
  params(): ParamInfo[] {
    return this.programs[0].params();
  }
  holdsEveryShard(): boolean {
    return this.programs.length === this.world;
  }
  async setParam(i: number, read: (offset: number, count: number) => Promise<Float32Array>): Promise<void> {
    for (const p of this.programs) {
      const x = p.params()[i];
      p.setParam(i, x.shardLength ? await read(x.shardOffset, x.shardLength) : new Float32Array(0));
    }
  }
  gather(i: number, what: 'params' | 'grads'): Float32Array {
    const full = new Float32Array(numel(this.specs[i].shape));
    for (const p of this.programs) {
      const x = p.params()[i];
      if (x.shardLength) full.set(what === 'params' ? p.getParam(i) : p.getGrad(i), x.shardOffset);
    }
    return full;
  }
  /** Puts whole values into every shard: f(param, element) for the weights, and +1/+2 for the moments. */
  fill(f: (i: number, k: number) => number, step: number): void {
    for (const p of this.programs) {
      for (const x of p.params()) {
        const v = Float32Array.from({ length: x.shardLength }, (_, j) => f(x.index, x.shardOffset + j));
        p.setParam(x.index, v);
        p.setState(x.index, 'exp_avg', v.map((y) => y + 1));
        p.setState(x.index, 'exp_avg_sq', v.map((y) => y + 2));
      }
      p.setStep(step);
    }
  }
  /** Whether every shard equals fill(f, step). */
  holds(f: (i: number, k: number) => number, step: number): string | undefined {
    for (const [r, p] of this.programs.entries()) {
      if (p.getStep() !== step) return `rank ${r}: step ${p.getStep()}, expected ${step}`;
      for (const x of p.params()) {
        for (let j = 0; j < x.shardLength; j++) {
          const want = f(x.index, x.shardOffset + j);
          const got = [p.values[x.index][j], p.moments.exp_avg[x.index][j] - 1, p.moments.exp_avg_sq[x.index][j] - 2];
          if (got.some((g) => g !== want)) return `rank ${r} ${x.name}[${x.shardOffset + j}]: ${got.join('/')} (expected ${want})`;
        }
      }
    }
    return undefined;
  }
  asRankSet(): RankSet {
    return this as unknown as RankSet;
  }
}

/** The value of element k of parameter i at a step (exact in fp32 for the sizes the tests use). */
export const valueAt = (step: number) => (i: number, k: number) => step * 1000 + i * 100 + (k % 97);

/** The value of element k of parameter i when the windows read so far add up to `read` (exact in fp32 below 16000). */
export const dataValue = (read: number) => (i: number, k: number) => read * 1000 + i * 100 + (k % 97);

/** What reading window w adds (from 1 to 7: not the window count, so a run that reads other windows shows). */
export const windowWeight = (w: number) => (w % 7) + 1;

/** What the windows [0, n) add up to: a run that has read them in any order holds dataValue of it. */
export const windowsRead = (n: number) => Array.from({ length: n }, (_, w) => windowWeight(w)).reduce((a, b) => a + b, 0);
