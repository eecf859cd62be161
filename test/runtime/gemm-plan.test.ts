import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { findExecutable } from "../../runtime/build.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const cudaInclude = "/usr/local/cuda/include";

describe("fpdt_gemm_bf16 row-major plan (CPU check)", function () {
  this.timeout(60_000);

  it("the planned column-major product equals the row-major GEMM for all transposes", function () {
    const gxx = findExecutable("g++", process.env.CXX, []);
    if (!gxx || !existsSync(join(cudaInclude, "cuda_runtime_api.h"))) {
      console.log("    (skipped: g++ or CUDA headers not found)");
      this.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), "fpdt-gemm-"));
    try {
      const exe = join(dir, "check");
      execFileSync(gxx!, [
        "-std=c++17", "-O1",
        `-I${join(root, "runtime", "src")}`, `-I${join(root, "runtime", "include")}`, `-I${cudaInclude}`,
        join(here, "fixtures", "gemm_plan_check.cc"), join(root, "runtime", "src", "gemm_plan.cc"),
        "-o", exe,
      ]);
      const out = execFileSync(exe, { encoding: "utf8" });
      expect(out.split("\n")[0]).to.equal("ok");
      expect(out).to.contain("lda=3 is below the row length 4; pass lda >= 4");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
