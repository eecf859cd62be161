// SIGTERM or SIGINT while checkpoints are on: finish the step in flight, write a checkpoint,
// exit 0. One process (one GPU, or a local world) decides alone; the ranks of a multi-process
// world agree after every step whether any of them got a signal (runtime/stop-agreement.ts),
// so all of them save after the same step even when the signal reached one. A second signal
// stops this process at once. A rank that got a signal and does not reach the end of its step
// (another rank died and NCCL waits for it) gives up after the step's usual time plus
// FPDT_STOP_TIMEOUT_S, with one line, rather than hang.
import type { DistEnv } from '../../runtime/dist-env.js';
import { agreeToStop, stopTimeoutMs, type AgreedStop } from '../../runtime/stop-agreement.js';
import { RuntimeError } from '../../runtime/errors.js';
import { errors } from '../errors.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
const exitCode = (signal: string) => 128 + (signal === 'SIGINT' ? 2 : 15);

let armed = 0;
/** Whether a stop after the step is armed in this process (a rank's plain SIGTERM exit must then stand aside). */
export const stopsAfterStep = () => armed > 0;

export class StopRequest {
  /** the signal this process got, if any */
  signal?: string;
  private longestStepMs = 0;
  private watchdog?: NodeJS.Timeout;
  private readonly listeners: [NodeJS.Signals, () => void][];

  constructor(
    private readonly dist: DistEnv | undefined,
    private readonly say: (line: string) => void = (l) => process.stderr.write(l + '\n'),
    private readonly timeoutMs = stopTimeoutMs(),
  ) {
    this.listeners = SIGNALS.map((sig) => [sig, () => this.onSignal(sig)]);
    for (const [sig, f] of this.listeners) process.on(sig, f);
    armed += 1;
  }

  private onSignal(sig: string): void {
    if (this.signal) process.exit(exitCode(sig));
    this.signal = sig;
    const who = this.dist && this.dist.world > 1 ? `rank ${this.dist.rank}: ` : '';
    this.say(`${who}${sig}: finishing the step in flight, then writing a checkpoint (again to stop at once)`);
    // without a step measured yet, nothing says how long the step in flight may take
    if (this.longestStepMs === 0) return;
    const limit = 2 * this.longestStepMs + this.timeoutMs;
    this.watchdog = setTimeout(() => {
      this.say(errors.stopNotReached(sig, Math.round(limit / 1000)).line());
      process.exit(exitCode(sig));
    }, limit);
    this.watchdog.unref();
  }

  /** The step just finished took `ms` (it bounds how long the next may take after a signal). */
  stepTook(ms: number): void {
    if (Number.isFinite(ms)) this.longestStepMs = Math.max(this.longestStepMs, ms);
  }

  /** After `step`: whether to stop now, the same answer on every rank of the world. */
  async agree(step: number): Promise<AgreedStop | undefined> {
    clearTimeout(this.watchdog);
    if (!this.dist || this.dist.world === 1) return this.signal === undefined ? undefined : { signal: this.signal, rank: 0 };
    try {
      return await agreeToStop(this.dist, step, this.signal, this.timeoutMs);
    } catch (e) {
      throw e instanceof RuntimeError ? errors.runtime(e.message) : e;
    }
  }

  dispose(): void {
    clearTimeout(this.watchdog);
    for (const [sig, f] of this.listeners) process.off(sig, f);
    armed -= 1;
  }
}
