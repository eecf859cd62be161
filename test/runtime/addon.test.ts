import { expect } from "chai";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { buildAddon, findExecutable } from "../../runtime/build.js";
import { RuntimeError } from "../../runtime/errors.js";
import { Program, loadAddon, type LoadedAddon } from "../../runtime/load.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

describe("runtime addon (stub program)", function () {
  this.timeout(180_000);
  let work: string;
  let addonPath: string;
  let addon: LoadedAddon;
  const progress: string[] = [];

  before(async function () {
    const nvcc = findExecutable("nvcc", process.env.CUDACXX, ["/usr/local/cuda/bin/nvcc"]);
    if (!nvcc || !findExecutable("cmake", process.env.CMAKE, [])) {
      console.log("    (skipped: nvcc or cmake not found)");
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), "fpdt-addon-"));
    mkdirSync(join(work, "stub", "src"), { recursive: true });
    copyFileSync(join(fixtures, "stub_program.cu"), join(work, "stub", "src", "stub_program.cu"));
    const result = await buildAddon({
      programDir: join(work, "stub"),
      buildDir: join(work, "build"),
      onProgress: (line) => progress.push(line),
    });
    addonPath = result.addonPath;
    addon = loadAddon(addonPath);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("reports build progress and produces a .node file", () => {
    expect(addonPath).to.match(/\.node$/);
    expect(progress.some((l) => /Linking/.test(l))).to.equal(true);
  });

  it("loads and reports the program's ABI version and name", () => {
    expect(addon.native.abiVersion()).to.equal(7);
    expect(addon.programName).to.contain("stub");
  });

  it("create either works on a GPU or fails with one clear 'no CUDA device' line", async () => {
    let program: Program | undefined;
    try {
      program = Program.create(addon, { config: { lr: 0.5 } });
    } catch (e) {
      expect(e).to.be.instanceOf(RuntimeError);
      const err = e as RuntimeError;
      expect(err.code).to.equal("FPDT_ERR_NO_DEVICE");
      expect(err.message).to.match(/^no CUDA device: /);
      expect(err.message).to.not.contain("\n");
      return;
    }
    // A GPU is present: run the stub end to end.
    const params = program.params();
    expect(params.map((p) => p.name)).to.deep.equal(["embed", "norm"]);
    program.setParam("norm", new Float32Array([1, 2, 3]));
    program.setTokens(new Int32Array([1, 2, 3, 4]));
    const loss = await program.step();
    expect(loss).to.be.greaterThan(0);
    expect(Array.from(program.getGrad("norm"))).to.deep.equal([1, 2, 3]);
    // the stub's trace: the whole step as one event of instruction 0, named "step"
    const [event, ...more] = program.trace();
    expect(more).to.have.length(0);
    expect(event).to.include({ instr: 0, id: "step", op: "step", stream: 0, startMs: 0 });
    expect(event.endMs).to.be.at.least(0);
    // optimizer state round-trips through the ABI: moments by name, the step count
    expect(program.getStep()).to.equal(1);
    program.setState("norm", "exp_avg_sq", new Float32Array([4, 5, 6]));
    expect(Array.from(program.getState("norm", "exp_avg_sq"))).to.deep.equal([4, 5, 6]);
    expect(Array.from(program.getState("norm", "exp_avg"))).to.deep.equal([0, 0, 0]);
    program.setStep(7);
    expect(program.getStep()).to.equal(7);
    expect(() => program!.setState("norm", "exp_avg", new Float32Array(2))).to.throw(RuntimeError, /2 were given/);
    program.destroy();
  });

  it("bad create arguments come back as errors, not aborts", () => {
    expect(() => Program.create(addon, { rank: 2, world: 2 })).to.throw(RuntimeError, /rank 2 is not in 0..1/);
  });

  it("NCCL missing names the library and FPDT_NCCL", () => {
    const saved = process.env.FPDT_NCCL;
    process.env.FPDT_NCCL = "/nonexistent/libnccl.so.2";
    try {
      expect(() => addon.native.ncclUniqueId()).to.throw(/NCCL library not loaded: FPDT_NCCL=\/nonexistent\/libnccl.so.2/);
    } finally {
      if (saved === undefined) delete process.env.FPDT_NCCL;
      else process.env.FPDT_NCCL = saved;
    }
  });

  it("a cuBLASLt without its entry points is named, with FPDT_CUBLASLT", () => {
    const saved = process.env.FPDT_CUBLASLT;
    process.env.FPDT_CUBLASLT = "libm.so.6";
    try {
      expect(() => addon.native.libraryProbe("cublasLt")).to.throw(/^cuBLASLt library is too old or not cuBLASLt: it has no cublasLtCreate; .* set FPDT_CUBLASLT/);
    } finally {
      if (saved === undefined) delete process.env.FPDT_CUBLASLT;
      else process.env.FPDT_CUBLASLT = saved;
    }
  });

  it("a missing addon file is one clear error", () => {
    expect(() => loadAddon(join(work, "nope.node"))).to.throw(RuntimeError, /does not exist; build it first/);
  });
});
