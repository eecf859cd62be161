// `fpdtc run` with dp groups: step k gives group g window dp*k + g of the token stream, the
// groups' sequences one after another; a world of the wrong size is named as dp x sp.
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRanks, randomTokens, stepBatch, stepTokens } from '../../compiler/train/loop.js';
import { withTempDir } from '../temp-dir.js';

describe('fpdtc run feeds dp groups', () => {
  it('step k: group g takes window dp*k + g, from a token file or the seeded stream', async () => {
    const stream = Array.from({ length: 6 * 8 }, (_, i) => i % 64);
    await withTempDir('fpdt-dp-tokens-', async (dir) => {
      const file = join(dir, 'tokens.bin');
      writeFileSync(file, new Uint8Array(new Uint32Array(stream).buffer));
      // six windows of 8; dp 2, step 1 takes windows 2 and 3; step 3 wraps to windows 0 and 1
      expect(Array.from(await stepBatch(file, 8, 64, 0, 1, 2))).to.deep.equal(stream.slice(16, 32));
      expect(Array.from(await stepBatch(file, 8, 64, 0, 3, 2))).to.deep.equal(stream.slice(0, 16));
      const seeded = await stepBatch(undefined, 8, 64, 7, 1, 3);
      expect(Array.from(seeded)).to.deep.equal([3, 4, 5].flatMap((w) => Array.from(randomTokens(8, 64, 7, w))));
      // one group: the run's windows as before
      expect(Array.from(await stepBatch(file, 8, 64, 0, 4, 1))).to.deep.equal(Array.from(await stepTokens(file, 8, 64, 0, 4)));
    });
  });

  it('a local world or process count other than dp x sp is one line that names both', async () => {
    const err = (o: Parameters<typeof openRanks>[3]) => openRanks('out/m', 4, {}, o, 2).then(() => '', (e: Error) => e.message);
    expect(await err({ ranksPerGpu: 2 })).to.equal('out/m is compiled for dp 2 x sp 2 (4 ranks): run it with --ranks-per-gpu 4, or compile with other --dp and --sp');
    expect(await err({})).to.match(/compiled for dp 2 x sp 2 \(4 ranks\): run it with --gpus 4 \(one process per GPU\) or --ranks-per-gpu 4/);
  });
});
