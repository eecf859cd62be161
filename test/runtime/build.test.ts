import { expect } from "chai";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { buildAddon, findExecutable, firstBuildError, progressLine, renderCMakeLists } from "../../runtime/build.js";

describe("addon build", () => {
  it("renders a CMakeLists with static cudart, .node suffix, N-API version and architectures", () => {
    const text = renderCMakeLists({
      target: "fpdt_x",
      cudaArchitectures: "90a",
      napiVersion: 8,
      programSources: ["/p/src/a.cu"],
      runtimeSources: ["/r/addon.cc"],
      includeDirs: ["/inc"],
      defines: ["FOO=1"],
      cudaFlags: ["-lineinfo"],
    });
    for (const needle of [
      "project(fpdt_x LANGUAGES CXX CUDA)",
      'set(CMAKE_CUDA_ARCHITECTURES "90a")',
      "set(CMAKE_CUDA_RUNTIME_LIBRARY Static)",
      "set(CMAKE_POSITION_INDEPENDENT_CODE ON)",
      'SUFFIX ".node"',
      "NAPI_VERSION=8",
      '"/p/src/a.cu"',
      '"/r/addon.cc"',
      "${CMAKE_JS_INC}",
      "${CMAKE_JS_LIB} ${CMAKE_DL_LIBS}",
      "FOO=1",
      "-lineinfo",
    ]) {
      expect(text).to.contain(needle);
    }
  });

  it("turns ninja and make output into short progress lines", () => {
    expect(progressLine("[2/8] Building CUDA object CMakeFiles/fpdt_x.dir/src/attn.cu.o")).to.equal("[2/8] Building CUDA attn.cu");
    expect(progressLine("[ 50%] Building CXX object CMakeFiles/fpdt_x.dir/addon.cc.o")).to.equal("[50%] Building CXX addon.cc");
    expect(progressLine("[8/8] Linking CXX shared library fpdt_x.node")).to.equal("[8/8] Linking CXX shared library fpdt_x.node");
    expect(progressLine("-- Detecting CXX compile features")).to.equal(undefined);
  });

  it("finds the first compiler error in a log", () => {
    const log = ["[1/3] Building CUDA object a.cu.o", "FAILED: a.cu.o", "/p/src/a.cu(12): error: identifier \"x\" is undefined", "1 error detected"].join("\n");
    expect(firstBuildError(log)).to.equal('/p/src/a.cu(12): error: identifier "x" is undefined');
    expect(firstBuildError("/p/addon.cc:4:10: fatal error: napi.h: No such file or directory")).to.contain("fatal error: napi.h");
  });

  describe("missing tools and sources", () => {
    let dir: string;
    const saved = { CUDACXX: process.env.CUDACXX, CMAKE: process.env.CMAKE };
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "fpdt-build-"));
      mkdirSync(join(dir, "prog", "src"), { recursive: true });
      writeFileSync(join(dir, "prog", "src", "a.cu"), "");
    });
    afterEach(() => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("nvcc missing", async () => {
      process.env.CUDACXX = join(dir, "no-nvcc");
      const err = await buildAddon({ programDir: join(dir, "prog"), onProgress: () => {} }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/^build: nvcc not found \(looked in CUDACXX=.*no-nvcc\); install the CUDA toolkit \(13\.0\) or set CUDACXX/);
    });

    it("cmake missing", async function () {
      if (!findExecutable("nvcc", process.env.CUDACXX, ["/usr/local/cuda/bin/nvcc"])) this.skip();
      process.env.CMAKE = join(dir, "no-cmake");
      const err = await buildAddon({ programDir: join(dir, "prog"), onProgress: () => {} }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/^build: cmake not found \(looked in CMAKE=.*no-cmake\); install cmake >= 3\.24/);
    });

    it("no program sources", async function () {
      if (!findExecutable("nvcc", process.env.CUDACXX, ["/usr/local/cuda/bin/nvcc"])) this.skip();
      if (!findExecutable("cmake", process.env.CMAKE, [])) this.skip();
      const err = await buildAddon({ programDir: join(dir, "empty"), onProgress: () => {} }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/^build: no \.cu\/\.cc\/\.cpp files in .*empty\/src; run `fpdtc compile` first/);
    });
  });
});
