// The ranks a training process drives: one program (one GPU, or this process's rank of an NCCL
// world), or every rank of a local world (several ranks on one GPU, stepped together). Weights
// and gradients cross this boundary as whole tensors: loading gives each rank its ZeRO-3 shard,
// gathering puts the shards of the ranks held here back together.
import type { LoadedAddon, NcclComm, ParamInfo } from '../../runtime/load.js';
import { Program, STEP_PHASES } from '../../runtime/load.js';

export type Backend = 'single' | 'local' | 'nccl';

export class RankSet {
  private constructor(
    readonly programs: readonly Program[],
    /** ranks of the whole world (programs.length for single and local) */
    readonly world: number,
    readonly backend: Backend,
    private readonly release: () => void = () => {},
  ) {}

  static single(addon: LoadedAddon | string, config: Record<string, unknown>): RankSet {
    return new RankSet([Program.create(addon, { config })], 1, 'single');
  }

  static local(addon: LoadedAddon | string, world: number, config: Record<string, unknown>): RankSet {
    return new RankSet(Program.createLocal(addon, world, { config }), world, 'local');
  }

  /** This process's rank of an NCCL world (one GPU per process). */
  static nccl(addon: LoadedAddon, rank: number, world: number, comm: NcclComm, config: Record<string, unknown>): RankSet {
    return new RankSet([Program.create(addon, { config, rank, world, comm })], world, 'nccl', () => addon.native.ncclDestroy(comm));
  }

  /** The parameter table (names, full shapes); shards differ by rank. */
  params(): ParamInfo[] {
    return this.programs[0].params();
  }

  /** Whether the ranks held here cover every shard (so whole tensors can be gathered here). */
  holdsEveryShard(): boolean {
    return this.programs.length === this.world;
  }

  /** Sets parameter i on every rank held here from its whole value, read shard by shard. */
  async setParam(i: number, read: (offset: number, count: number) => Promise<Float32Array>): Promise<void> {
    for (const p of this.programs) {
      const info = p.params()[i];
      p.setParam(i, info.shardLength === 0 ? new Float32Array(0) : await read(info.shardOffset, info.shardLength));
    }
  }

  /** The whole parameter (or its gradient): every shard held here, placed at its offset. */
  gather(i: number, what: 'params' | 'grads'): Float32Array {
    const info = this.params()[i];
    const full = new Float32Array(info.shape.reduce((a, b) => a * b, 1));
    for (const p of this.programs) {
      const mine = p.params()[i];
      if (mine.shardLength > 0) full.set(what === 'params' ? p.getParam(i) : p.getGrad(i), mine.shardOffset);
    }
    return full;
  }

  /** The step's tokens: one sequence, or with dp groups every group's one after another (each program takes its group's). */
  setTokens(tokens: Int32Array, labels: Int32Array | null = null): void {
    for (const p of this.programs) p.setTokens(tokens, labels);
  }

  /** Packed documents: every rank takes the whole window(s) and keeps its rows (fpdt_set_documents). */
  setDocuments(positions: Int32Array, docs: Int32Array): void {
    for (const p of this.programs) p.setDocuments(positions, docs);
  }

  /** What every rank held here divides the loss and gradients by (the labels of all windows of an accumulated step). */
  setLabelCount(count: number): void {
    for (const p of this.programs) p.setLabelCount(count);
  }

  /** One step of every rank held here (or the `phases` of an accumulated one); the global mean loss (the same on every rank). */
  async step(phases: number = STEP_PHASES.whole): Promise<number> {
    if (this.backend === 'local') return (await Program.stepAll(this.programs, phases))[0];
    return this.programs[0].step(phases);
  }

  /** Frees the programs, then the NCCL communicator they used. */
  destroy(): void {
    for (const p of this.programs) p.destroy();
    this.release();
  }
}
