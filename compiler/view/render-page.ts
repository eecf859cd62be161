// view.html: one self-contained file (inline data, script and style; nothing fetched), from the
// template and scripts in view-templates/. The template only places what it is given.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import type { ViewData } from './view-data.js';

const templateDir = fileURLToPath(new URL('../../view-templates/', import.meta.url));
const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templateDir), { autoescape: true, throwOnUndefined: true });

/** The page's scripts, in the order they run (later ones use what earlier ones define). */
export const PAGE_SCRIPTS = ['common.js', 'header.js', 'timeline.js', 'memory.js', 'dataflow.js', 'main.js'] as const;

/** JSON that is safe inside a <script> element: no `</script>` or `<!--` can appear. */
export const scriptSafeJson = (x: unknown): string => JSON.stringify(x).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

export function renderViewPage(data: ViewData): string {
  const read = (name: string): string => readFileSync(join(templateDir, name), 'utf8');
  return env.render('view.njk', {
    model: data.header.model,
    data: scriptSafeJson(data),
    css: read('view.css'),
    scripts: PAGE_SCRIPTS.map(read),
  });
}
