import { expect } from 'chai';
import { join } from 'node:path';
import { MODELS_DIR, resolveModelPath } from '../../compiler/frontend/index.js';
import { ROOT } from '../cli/run-cli.js';

describe('model paths', () => {
  it('finds bare names, with or without .ts, in models/', () => {
    const want = join(MODELS_DIR, 'llama70b.ts');
    expect(resolveModelPath('llama70b', '/')).to.equal(want);
    expect(resolveModelPath('llama70b.ts', '/')).to.equal(want);
  });

  it('takes paths relative to the working directory', () => {
    expect(resolveModelPath('models/tiny-gpt.ts', ROOT)).to.equal(join(ROOT, 'models/tiny-gpt.ts'));
    expect(resolveModelPath('models/tiny-gpt', ROOT)).to.equal(join(ROOT, 'models/tiny-gpt.ts'));
  });

  it('does not look in models/ for something with a folder in it', () => {
    expect(() => resolveModelPath('elsewhere/llama70b', '/')).to.throw(/not found \(looked at elsewhere\/llama70b, elsewhere\/llama70b\.ts\)$/);
  });
});
