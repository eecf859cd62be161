import { expect } from 'chai';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listSchedule } from '../../compiler/schedule/listing.js';
import { fpdtLike } from './fixtures.js';
import { expectGoldenFile } from '../golden/golden.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Compares with test/schedule/golden/<name> (test/golden/golden.ts: UPDATE_GOLDEN=1 rewrites it). */
const golden = (name: string, got: string): void => expectGoldenFile(join(here, 'golden', name), got);

describe('schedule/listing', () => {
  it('prints the fpdt-like schedule with its loops (golden)', () => {
    golden('fpdt-like.txt', listSchedule(fpdtLike()));
  });
  it('prints only the layer loops on request', () => {
    const text = listSchedule(fpdtLike(), { layersOnly: true, header: false });
    expect(text.split('\n')[0]).to.equal('for l in 0..2:  # layer');
    expect(text).to.include('for l in reverse 0..2:  # layer');
    expect(text).to.not.include('buffers:');
  });
});
