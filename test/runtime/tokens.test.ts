import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TokenFile, readTokens } from "../../runtime/tokens.js";

/** A version-1 .npy file as numpy.save writes it. */
function npy(descr: string, shape: string, data: ArrayBufferView): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const prefix = Buffer.alloc(10);
  prefix.write("\x93NUMPY", 0, "latin1");
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, "latin1"), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

describe("token files", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "fpdt-tok-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads flat little-endian uint32 files, whole or in slices", async () => {
    const path = join(dir, "data.bin");
    writeFileSync(path, Buffer.from(Uint32Array.from([5, 6, 7, 8, 9]).buffer));
    expect(Array.from(await readTokens(path))).to.deep.equal([5, 6, 7, 8, 9]);
    const f = await TokenFile.open(path);
    expect(f.length).to.equal(5);
    expect(Array.from(await f.read(1, 3))).to.deep.equal([6, 7, 8]);
    await f.read(4, 2).then(
      () => expect.fail("read past end"),
      (e: Error) => expect(e.message).to.contain("tokens [4, 6) are outside the file's 5 tokens"),
    );
    await f.close();
  });

  it("reads .npy uint32, int32 and int64 arrays", async () => {
    for (const [descr, data] of [
      ["<u4", Uint32Array.from([1, 2, 3])],
      ["<i4", Int32Array.from([1, 2, 3])],
      ["<i8", BigInt64Array.from([1n, 2n, 3n])],
    ] as const) {
      const path = join(dir, `t${descr.slice(1)}.npy`);
      writeFileSync(path, npy(descr, "(3,)", data));
      expect(Array.from(await readTokens(path)), descr).to.deep.equal([1, 2, 3]);
    }
  });

  it("errors say which file, what is wrong and what to do", async () => {
    const odd = join(dir, "odd.bin");
    writeFileSync(odd, Buffer.alloc(6));
    await readTokens(odd).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.match(/odd\.bin: 6 bytes is not a whole number of uint32 tokens; write tokens as flat/),
    );
    const twoD = join(dir, "twod.npy");
    writeFileSync(twoD, npy("<i4", "(2, 2)", new Int32Array(4)));
    await readTokens(twoD).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.match(/twod\.npy: holds an array of shape \(2, 2\), not 1-D; flatten it/),
    );
    const floats = join(dir, "floats.npy");
    writeFileSync(floats, npy("<f4", "(2,)", new Float32Array(2)));
    await readTokens(floats).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.contain("holds dtype '<f4', not uint32, int32 or int64"),
    );
    const negative = join(dir, "neg.npy");
    writeFileSync(negative, npy("<i8", "(2,)", BigInt64Array.from([4n, -1n])));
    await readTokens(negative).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.contain("token -1 at index 1 is not a valid id"),
    );
    const big = join(dir, "big.bin");
    writeFileSync(big, Buffer.from(Uint32Array.from([1, 2 ** 31]).buffer));
    await readTokens(big).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.contain("token 2147483648 at index 1"),
    );
    await readTokens(join(dir, "missing.bin")).then(
      () => expect.fail(),
      (e: Error) => expect(e.message).to.match(/missing\.bin: cannot be opened \(ENOENT\); check the --tokens path/),
    );
  });
});
