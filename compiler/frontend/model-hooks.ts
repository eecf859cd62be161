// Module loader hooks for model files, registered once by evaluate.ts (they run on Node's
// loader thread). A model file is an ES module wherever it lives: Node would take a .ts file
// in a folder without `"type": "module"` for CommonJS and then fail on its `import`s. And
// `fpdtc/dsl` always means this compiler's own DSL, so the model builds with the very
// classes the compiler checks against, whether or not its folder has fpdtc installed.

export interface HooksData {
  /** the DSL's entry file as a file: URL */
  readonly dslUrl: string;
  /** the package name that maps to it */
  readonly dslPackage: string;
}

interface ResolveContext {
  conditions?: readonly string[];
  parentURL?: string;
}

interface Resolved {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}

type NextResolve = (specifier: string, context?: ResolveContext) => Promise<Resolved>;

let data: HooksData | undefined;

export function initialize(d: HooksData): void {
  data = d;
}

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<Resolved> {
  if (data && specifier === data.dslPackage) return { url: data.dslUrl, format: 'module', shortCircuit: true };
  const r = await next(specifier, context);
  return isUserTypeScript(r.url) && !isRequire(context) ? { ...r, format: 'module' } : r;
}

/** A .ts file of the user's (not .cts or .mts, which say their format, nor a dependency). */
function isUserTypeScript(url: string): boolean {
  if (!url.startsWith('file:')) return false;
  const path = new URL(url).pathname;
  return /\.tsx?$/.test(path) && !path.includes('/node_modules/');
}

const isRequire = (c: ResolveContext) => !!c.conditions?.includes('require') && !c.conditions.includes('import');
