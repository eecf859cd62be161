// Symbolic dimensions: a monomial over named sizes with a rational coefficient,
// e.g. `S/4`, `Hkv*Dh`, `2*F`. Enough for transformer shapes and sequence sharding,
// and printable as the user wrote it.

export class Dim {
  private constructor(
    /** numerator and denominator of the coefficient */
    readonly num: number,
    readonly den: number,
    /** symbol -> exponent, exponents non-zero, keys sorted */
    readonly syms: Readonly<Record<string, number>>,
  ) {}

  static of(x: number | string | Dim): Dim {
    if (x instanceof Dim) return x;
    if (typeof x === 'number') {
      if (!Number.isInteger(x) || x < 0) throw new Error(`dimension must be a non-negative integer, got ${x}`);
      return new Dim(x, 1, {});
    }
    return Dim.parse(x);
  }

  static sym(name: string): Dim {
    return new Dim(1, 1, { [name]: 1 });
  }

  /** Parses `A*B/4`, `2*F`, `S`, `128`. */
  static parse(text: string): Dim {
    const src = text.replace(/\s+/g, '');
    if (!/^[A-Za-z_0-9*/]+$/.test(src) || src === '') throw new Error(`cannot read dimension '${text}'`);
    let out = Dim.of(1);
    const tokens = src.match(/[*/]?[^*/]+/g) ?? [];
    for (const tok of tokens) {
      const divide = tok.startsWith('/');
      const body = tok.replace(/^[*/]/, '');
      const part = /^\d+$/.test(body) ? Dim.of(Number(body)) : Dim.sym(body);
      out = divide ? out.div(part) : out.mul(part);
    }
    return out;
  }

  mul(o: Dim | number): Dim {
    const b = Dim.of(o);
    const syms: Record<string, number> = { ...this.syms };
    for (const [k, e] of Object.entries(b.syms)) syms[k] = (syms[k] ?? 0) + e;
    return Dim.make(this.num * b.num, this.den * b.den, syms);
  }

  div(o: Dim | number): Dim {
    const b = Dim.of(o);
    const syms: Record<string, number> = { ...this.syms };
    for (const [k, e] of Object.entries(b.syms)) syms[k] = (syms[k] ?? 0) - e;
    return Dim.make(this.num * b.den, this.den * b.num, syms);
  }

  private static make(num: number, den: number, syms: Record<string, number>): Dim {
    const g = gcd(num, den);
    const clean: Record<string, number> = {};
    for (const k of Object.keys(syms).sort()) if (syms[k] !== 0) clean[k] = syms[k];
    return new Dim(num / g, den / g, clean);
  }

  get isConst(): boolean {
    return Object.keys(this.syms).length === 0;
  }

  /** Numeric value under a binding of every symbol; throws naming a missing symbol. */
  eval(env: Readonly<Record<string, number>>): number {
    let v = this.num / this.den;
    for (const [k, e] of Object.entries(this.syms)) {
      const x = env[k];
      if (x === undefined) throw new Error(`dimension ${this} uses unknown size '${k}'`);
      v *= x ** e;
    }
    return v;
  }

  equals(o: Dim): boolean {
    return this.toString() === o.toString();
  }

  toString(): string {
    const parts: string[] = [];
    const dens: string[] = [];
    for (const [k, e] of Object.entries(this.syms)) {
      const list = e > 0 ? parts : dens;
      for (let i = 0; i < Math.abs(e); i++) list.push(k);
    }
    if (this.num !== 1 || parts.length === 0) parts.unshift(String(this.num));
    if (this.den !== 1) dens.push(String(this.den));
    let s = parts.join('*');
    for (const d of dens) s += '/' + d;
    return s;
  }
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a || 1;
}

export type DimLike = number | string | Dim;
export const dims = (xs: readonly DimLike[]): Dim[] => xs.map(Dim.of);
