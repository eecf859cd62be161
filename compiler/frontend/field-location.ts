// Where in a model file a field of its definition is written (`sizes: { D: -48 }` -> the
// -48), found by parsing the file. Only an error needs it, so TypeScript loads only then.
import { readFileSync } from 'node:fs';
import { displayPath } from './resolve.js';

/**
 * `file:line:col` of the value of `group.key` (e.g. sizes.D) in the model file: a property
 * `key` in an object literal written as `group: {...}`, or in a variable named `group` that
 * the definition uses (`sizes,` or `sizes: sizes`). Undefined when the file builds it otherwise.
 */
export async function locateField(path: string, group: string, key: string): Promise<string | undefined> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const { ts } = await import('ts-morph');
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const propName = (n: { name?: unknown }) => {
    const name = n.name as import('ts-morph').ts.Node | undefined;
    return name && (ts.isIdentifier(name) || ts.isStringLiteral(name)) ? name.text : undefined;
  };
  // object literals that hold the group's fields
  const holders: import('ts-morph').ts.ObjectLiteralExpression[] = [];
  const visit = (n: import('ts-morph').ts.Node): void => {
    if ((ts.isPropertyAssignment(n) || ts.isVariableDeclaration(n)) && propName(n) === group && n.initializer && ts.isObjectLiteralExpression(n.initializer))
      holders.push(n.initializer);
    ts.forEachChild(n, visit);
  };
  visit(file);
  for (const holder of holders) {
    for (const p of holder.properties) {
      if (propName(p) !== key) continue;
      const at = ts.isPropertyAssignment(p) ? p.initializer : p;
      const { line, character } = file.getLineAndCharacterOfPosition(at.getStart(file));
      return `${displayPath(path)}:${line + 1}:${character + 1}`;
    }
  }
  return undefined;
}
