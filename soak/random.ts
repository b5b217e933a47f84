/** A small seeded PRNG (mulberry32): the same seed gives the same workload choices and fault schedule. */
export type Random = () => number;

export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An independent stream per purpose, so adding a client does not shift the fault schedule. */
export function fork(random: Random): Random {
  return seeded(Math.floor(random() * 2 ** 32));
}

export const between = (random: Random, min: number, max: number): number => min + random() * (max - min);
export const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
