// `fpdtc view out/<model> [--open]`: writes out/<model>/view.html, one self-contained page with
// the plan (header, timeline, memory, one layer's dataflow), and opens it when asked and able.
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../atomic-write.js';
import { renderViewPage } from '../view/render-page.js';
import { loadViewData } from '../view/view-data.js';

export function register(program: Command): void {
  program
    .command('view')
    .description('write out/<model>/view.html: the plan as one self-contained page (timeline, memory, one layer\'s dataflow)')
    .argument('<dir>', 'the output folder of a compile, e.g. out/llama70b')
    .option('--open', 'open the page with the system\'s opener (xdg-open or open)')
    .action((dir: string, o: { open?: boolean }) => {
      const path = writeViewPage(dir);
      process.stdout.write(`wrote ${path}\n`);
      if (o.open) process.stdout.write(openPage(path) + '\n');
    });
}

/** Writes view.html into `dir`; returns its path. */
export function writeViewPage(dir: string): string {
  const path = join(dir, 'view.html');
  writeFileAtomic(path, renderViewPage(loadViewData(dir)));
  return path;
}

/** Opens `path` with the first opener on PATH; says what happened in one line. */
function openPage(path: string): string {
  const openers = process.platform === 'darwin' ? ['open'] : ['xdg-open'];
  for (const cmd of openers) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status !== 0) continue;
    spawn(cmd, [resolve(path)], { detached: true, stdio: 'ignore' }).unref();
    return `opened with ${cmd}`;
  }
  return `cannot open it here: no ${openers.join(' or ')} on PATH; open ${resolve(path)} in a browser`;
}
