import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { RuntimeError } from "../../runtime/errors.js";
import { SafetensorsReader, SafetensorsWriter, writeSafetensors } from "../../runtime/safetensors.js";

describe("safetensors", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "fpdt-st-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("round-trips F32, BF16, F16 and I32 tensors with metadata", async () => {
    const path = join(dir, "a.safetensors");
    const w = Float32Array.from([1, -2.5, 3.140625, 0, 1e-3, 65504]);
    await writeSafetensors(
      path,
      [
        { name: "w", dtype: "F32", shape: [2, 3], data: w },
        { name: "wb", dtype: "BF16", shape: [2, 3], data: w },
        { name: "wh", dtype: "F16", shape: [6], data: w },
        { name: "ids", dtype: "I32", shape: [3], data: Int32Array.from([7, -1, 2 ** 31 - 1]) },
      ],
      { format: "pt" },
    );
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).to.equal(0);
    const r = await SafetensorsReader.open(path);
    try {
      expect(r.metadata).to.deep.equal({ format: "pt" });
      expect(r.names()).to.deep.equal(["w", "wb", "wh", "ids"]);
      expect(r.entry("wb").shape).to.deep.equal([2, 3]);
      expect(Array.from(await r.readF32("w"))).to.deep.equal(Array.from(w));
      const wb = await r.readF32("wb");
      // bf16 keeps 8 bits of mantissa: exact for these, ~0.4% for the rest.
      expect(Array.from(wb.subarray(0, 4))).to.deep.equal([1, -2.5, 3.140625, 0]);
      expect(wb[4]).to.be.closeTo(1e-3, 1e-5);
      expect(wb[5]).to.equal(65536);
      const wh = await r.readF32("wh");
      expect(wh[2]).to.equal(3.140625);
      expect(wh[4]).to.be.closeTo(1e-3, 1e-6);
      expect(wh[5]).to.equal(65504);
      expect(Array.from(await r.readI32("ids"))).to.deep.equal([7, -1, 2 ** 31 - 1]);
      // A slice, as one rank reads its shard.
      expect(Array.from(await r.readF32("w", 2, 3))).to.deep.equal([3.140625, 0, 1e-3].map((x) => Math.fround(x)));
    } finally {
      await r.close();
    }
  });

  it("bf16 rounds to nearest even and keeps NaN and infinities", async () => {
    const path = join(dir, "b.safetensors");
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1).
    const values = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, Infinity, -Infinity]);
    await writeSafetensors(path, [{ name: "x", dtype: "BF16", shape: [5], data: values }]);
    const r = await SafetensorsReader.open(path);
    const x = await r.readF32("x");
    await r.close();
    expect(x[0]).to.equal(1);
    expect(x[1]).to.equal(1 + 2 ** -6);
    expect(Number.isNaN(x[2])).to.equal(true);
    expect(x[3]).to.equal(Infinity);
    expect(x[4]).to.equal(-Infinity);
  });

  it("the streaming writer fills tensors in pieces and in any order", async () => {
    const path = join(dir, "c.safetensors");
    const wr = await SafetensorsWriter.create(path, [
      { name: "a", dtype: "F32", shape: [4] },
      { name: "b", dtype: "BF16", shape: [2, 2] },
    ]);
    await wr.write("b", Float32Array.from([1, 2, 3, 4]));
    await wr.write("a", Float32Array.from([3, 4]), 2);
    await wr.write("a", Float32Array.from([1, 2]), 0);
    expect(wr.unwritten()).to.deep.equal([]);
    await wr.close();
    const r = await SafetensorsReader.open(path);
    expect(Array.from(await r.readF32("a"))).to.deep.equal([1, 2, 3, 4]);
    expect(Array.from(await r.readF32("b"))).to.deep.equal([1, 2, 3, 4]);
    await r.close();
  });

  it("rejects corrupt files with one line naming the file and tensor", async () => {
    const good = join(dir, "good.safetensors");
    await writeSafetensors(good, [{ name: "t", dtype: "F32", shape: [4], data: new Float32Array(4) }]);
    const truncated = join(dir, "truncated.safetensors");
    writeFileSync(truncated, readFileSync(good).subarray(0, readFileSync(good).length - 4));
    const err = await SafetensorsReader.open(truncated).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(RuntimeError);
    expect((err as Error).message).to.match(/truncated\.safetensors: tensor 't' ends at byte \d+, past the end/);
    expect((err as Error).message).to.not.contain("\n");

    const junk = join(dir, "junk.safetensors");
    writeFileSync(junk, Buffer.from("not a safetensors file at all"));
    await SafetensorsReader.open(junk).then(
      () => expect.fail("opened junk"),
      (e: Error) => expect(e.message).to.match(/junk\.safetensors: header length \d+ does not fit/),
    );
    const r = await SafetensorsReader.open(good);
    expect(() => r.entry("missing")).to.throw(/has no tensor 'missing'; it has 1: t/);
    await r.readF32("t", 3, 2).then(
      () => expect.fail("read past end"),
      (e: Error) => expect(e.message).to.contain("slice [3, 5) of tensor 't' is outside its 4 elements"),
    );
    await r.close();
  });
});
