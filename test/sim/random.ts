/**
 * A seeded pseudo-random source. The simulation draws every choice from one of these, never from
 * Math.random, so a seed names exactly one run.
 *
 * The generator is a 32-bit "small fast counter" (four words of state, add/rotate/xor mixing), seeded
 * by hashing the seed and a label, so that independent streams (one per process, one for the network)
 * do not shift each other when one of them draws more or fewer numbers.
 */

/** A 32-bit integer hash with good avalanche (multiply-xorshift), used to derive seeds. */
function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function hashLabel(seed: number, label: string): number {
  let h = mix32(seed ^ 0x9e3779b9);
  for (let i = 0; i < label.length; i++) h = mix32(h ^ label.charCodeAt(i));
  // Seeds above 2^32 (the CLI accepts up to 2^53) still select distinct streams.
  return mix32(h ^ Math.floor(seed / 0x1_0000_0000));
}

export class Random {
  #a: number;
  #b: number;
  #c: number;
  #counter: number;
  readonly seed: number;
  readonly label: string;

  constructor(seed: number, label = "") {
    this.seed = seed;
    this.label = label;
    const h = hashLabel(seed, label);
    this.#a = h;
    this.#b = mix32(h + 1);
    this.#c = mix32(h + 2);
    this.#counter = 1;
    // Let the initial state spread before the first draw.
    for (let i = 0; i < 12; i++) this.#next32();
  }

  #next32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#counter) | 0;
    this.#counter = (this.#counter + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Another independent stream, determined by this one's seed and `label`. */
  fork(label: string): Random {
    return new Random(this.seed, `${this.label}/${label}`);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.#next32() / 0x1_0000_0000;
  }

  /** Uniform real in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi] (both ends included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick() from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /**
   * A value in [-bound, bound] that sits exactly on either bound two times out of three: the corners
   * are where safety margins are tight, so the search should live there.
   */
  extreme(bound: number): number {
    const r = this.next();
    if (r < 1 / 3) return -bound;
    if (r < 2 / 3) return bound;
    return this.between(-bound, bound);
  }
}
