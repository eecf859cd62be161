import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listSchedule } from '../../compiler/schedule/listing.js';
import { fpdtLike } from './fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Compares with test/schedule/golden/<name>; UPDATE_GOLDEN=1 rewrites it, a failure writes `.got`. */
function golden(name: string, got: string): void {
  const path = join(here, 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) writeFileSync(path, got);
  const want = readFileSync(path, 'utf8');
  if (got !== want) writeFileSync(`${path}.got`, got);
  expect(got, `differs from ${path}; see ${path}.got`).to.equal(want);
}

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
