// Reads where this process sits in a multi-process run from its environment:
// torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT; what our launcher sets), else Slurm's (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID, SLURM_LAUNCH_NODE_IPADDR), else one process.
import { runtimeErrors } from "./errors.js";

export interface DistEnv {
  rank: number;
  world: number;
  /** GPU index on this node. */
  localRank: number;
  masterAddr: string;
  masterPort: number;
  source: "torchrun" | "slurm" | "single";
}

export const DEFAULT_MASTER_PORT = 29500;
type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, min: number): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  if (!/^\s*-?\d+\s*$/.test(text)) throw runtimeErrors.distEnv(`${name}=${JSON.stringify(text)} is not an integer`, `set ${name} to a whole number`);
  const value = Number(text);
  if (value < min) throw runtimeErrors.distEnv(`${name}=${value} is below ${min}`, `set ${name} to ${min} or more`);
  return value;
}

function port(env: Env): number {
  const value = integer(env, "MASTER_PORT", 1) ?? DEFAULT_MASTER_PORT;
  if (value > 65535) throw runtimeErrors.distEnv(`MASTER_PORT=${value} is not a TCP port`, "set MASTER_PORT to 1..65535");
  return value;
}

function checkRanks(rankName: string, rank: number, worldName: string, world: number): void {
  if (rank >= world) throw runtimeErrors.distEnv(`${rankName}=${rank} is not below ${worldName}=${world}`, `set ${rankName} to 0..${world - 1}`);
}

export function parseDistEnv(env: Env = process.env): DistEnv {
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const rank = integer(env, "RANK", 0);
    const world = integer(env, "WORLD_SIZE", 1);
    if (rank === undefined) throw runtimeErrors.distEnv("WORLD_SIZE is set but RANK is not", "set RANK (0..WORLD_SIZE-1) for every process, or unset WORLD_SIZE");
    if (world === undefined) throw runtimeErrors.distEnv("RANK is set but WORLD_SIZE is not", "set WORLD_SIZE to the number of processes, or unset RANK");
    checkRanks("RANK", rank, "WORLD_SIZE", world);
    const localRank = integer(env, "LOCAL_RANK", 0) ?? (world === 1 ? 0 : undefined);
    if (localRank === undefined) throw runtimeErrors.distEnv(`RANK=${rank} of WORLD_SIZE=${world} without LOCAL_RANK`, "set LOCAL_RANK to the GPU index of this process on its node");
    const localWorld = integer(env, "LOCAL_WORLD_SIZE", 1);
    if (localWorld !== undefined) checkRanks("LOCAL_RANK", localRank, "LOCAL_WORLD_SIZE", localWorld);
    if (localRank > rank) throw runtimeErrors.distEnv(`LOCAL_RANK=${localRank} exceeds RANK=${rank}`, "set LOCAL_RANK to the GPU index on this node");
    const masterAddr = env.MASTER_ADDR || (world === 1 ? "127.0.0.1" : undefined);
    if (!masterAddr) throw runtimeErrors.distEnv(`WORLD_SIZE=${world} without MASTER_ADDR`, "set MASTER_ADDR to the address of the node running rank 0");
    return { rank, world, localRank, masterAddr, masterPort: port(env), source: "torchrun" };
  }
  if (env.SLURM_PROCID !== undefined) {
    const rank = integer(env, "SLURM_PROCID", 0)!;
    const world = integer(env, "SLURM_NTASKS", 1);
    if (world === undefined) throw runtimeErrors.distEnv("SLURM_PROCID is set but SLURM_NTASKS is not", "start the job with srun --ntasks N, or set RANK and WORLD_SIZE instead");
    checkRanks("SLURM_PROCID", rank, "SLURM_NTASKS", world);
    const localRank = integer(env, "SLURM_LOCALID", 0);
    if (localRank === undefined) throw runtimeErrors.distEnv("SLURM_PROCID is set but SLURM_LOCALID is not", "start the job with srun, or set LOCAL_RANK");
    const masterAddr = env.MASTER_ADDR || env.SLURM_LAUNCH_NODE_IPADDR || (world === 1 ? "127.0.0.1" : undefined);
    if (!masterAddr) throw runtimeErrors.distEnv(`SLURM_NTASKS=${world} without MASTER_ADDR or SLURM_LAUNCH_NODE_IPADDR`, "export MASTER_ADDR=<first node's address> before srun");
    return { rank, world, localRank, masterAddr, masterPort: port(env), source: "slurm" };
  }
  return { rank: 0, world: 1, localRank: 0, masterAddr: env.MASTER_ADDR || "127.0.0.1", masterPort: port(env), source: "single" };
}
