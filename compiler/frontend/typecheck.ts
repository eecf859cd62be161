// Type-checks a model file against the DSL with ts-morph, the way `tsc` would, and returns
// its diagnostics as plain data. ts-morph is imported only here and only when a check
// actually runs: loading TypeScript costs more than the rest of `fpdtc compile`.
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DSL_INDEX, DSL_PACKAGE } from './resolve.js';

export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export interface CheckResult {
  readonly diagnostics: readonly Diagnostic[];
  /** every source file the check read (model, DSL, IR, ...), for the verdict cache */
  readonly files: readonly string[];
}

/** compiler/: our own sources, checked by our own `tsc`; diagnostics there are not the user's. */
const COMPILER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..') + sep;

// Model files run under Node, but pulling in @types/node would triple the check time;
// console (and import.meta.url, to find a file beside the model) is all a model file has a
// reason to use.
const GLOBALS = `declare var console: { log(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void };
interface ImportMeta { readonly url: string }\n`;

export async function typeCheckFile(path: string): Promise<CheckResult> {
  const { Project, ts } = await import('ts-morph');
  const project = new Project({
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      // The runtime loads every model file as an ES module wherever it lives (model-hooks.ts),
      // so the check does too, rather than guessing CommonJS from a missing package.json.
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      paths: { [DSL_PACKAGE]: [DSL_INDEX] },
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      lib: ['lib.es2022.d.ts'],
      types: [],
    },
  });
  const model = project.addSourceFileAtPath(path);
  project.createSourceFile(resolve(COMPILER_DIR, '__fpdtc_globals.d.ts'), GLOBALS, { overwrite: true });
  project.resolveSourceFileDependencies();
  const program = project.getProgram().compilerObject;

  const userFiles = project.getSourceFiles().filter((f) => f === model || !isOurs(f.getFilePath()));
  const diagnostics: Diagnostic[] = [];
  for (const f of userFiles) {
    const node = f.compilerNode;
    for (const d of [...program.getSyntacticDiagnostics(node), ...program.getSemanticDiagnostics(node)]) {
      if (d.category !== ts.DiagnosticCategory.Error) continue;
      const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : { line: 0, character: 0 };
      diagnostics.push({
        file: d.file?.fileName ?? f.getFilePath(),
        line: pos.line + 1,
        col: pos.character + 1,
        message: ts.flattenDiagnosticMessageText(d.messageText, ' '),
      });
    }
  }
  const files = project
    .getSourceFiles()
    .map((f) => f.getFilePath() as string)
    .filter((p) => !p.endsWith('__fpdtc_globals.d.ts'));
  return { diagnostics, files };
}

function isOurs(file: string): boolean {
  return file.startsWith(COMPILER_DIR) || file.includes(`${sep}node_modules${sep}`);
}
