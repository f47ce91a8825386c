/**
 * A seeded generator (mulberry32) and the byte and text pieces the fuzzers build inputs from, so
 * that a failure is reproduced by its seed (`npm run fuzz -- --seed N`).
 */
export interface Random {
  readonly seed: number
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [0, n). */
  readonly int: (n: number) => number
  readonly chance: (p: number) => boolean
  readonly pick: <A>(items: ReadonlyArray<A>) => A
}

export const make = (seed: number): Random => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  return { seed, next, int, chance: (p) => next() < p, pick: (items) => items[int(items.length)]! }
}

/** Bytes that matter to SMTP decoders, over-represented; any byte may still appear. */
const interesting = [0x0d, 0x0a, 0x2e, 0x20, 0x09, 0x00, 0x3a, 0x3c, 0x3e, 0x3d, 0x40, 0x22, 0x5c, 0xc0, 0xae, 0xff, 0xe2, 0x80, 0x85]

export const bytes = (r: Random, max: number): Uint8Array => {
  const out = new Uint8Array(r.int(max + 1))
  for (let i = 0; i < out.length; i++) {
    const roll = r.next()
    out[i] = roll < 0.35 ? r.pick(interesting) : roll < 0.85 ? 0x20 + r.int(95) : r.int(256)
  }
  return out
}

/** Text made of runs (long blanks, dots, CR/LF spellings, UTF-8 and invalid UTF-8) and tokens. */
export const latin1 = (r: Random, pieces: ReadonlyArray<string>, count: number): string => {
  let out = ""
  for (let i = 0; i < count; i++) {
    const roll = r.int(10)
    if (roll < 5) out += r.pick(pieces)
    else if (roll < 6) out += r.pick([" ", "\t", "."]).repeat(1 + r.int(r.chance(0.1) ? 3000 : 20))
    else if (roll < 7) out += r.pick(["\r\n", "\n", "\r", "\r\r\n", "\n\r", "\r\n.\r\n", "\n.\n", "\r\n..", "\0"])
    else if (roll < 8) out += r.pick(["é", "\u00c3\u00a9", "\u00c0\u00ae", "\u00ff\u00fe", "\u00e2\u0080\u00a8", "\u00e2\u0084\u00aa"])
    else out += String.fromCharCode(...bytes(r, 12))
  }
  return out
}

/** Splits `data` into 1 to 6 chunks at random offsets (decoders must not care where reads end). */
export const chunks = (r: Random, data: Uint8Array): Array<Uint8Array> => {
  const cuts = Array.from({ length: r.int(6) }, () => r.int(data.length + 1)).sort((x, y) => x - y)
  const out: Array<Uint8Array> = []
  let at = 0
  for (const cut of [...cuts, data.length]) {
    out.push(data.subarray(at, cut))
    at = cut
  }
  return out
}
