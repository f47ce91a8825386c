/**
 * Typed notes that plugins attach to a session or a transaction, so that one plugin's findings
 * reach later plugins without untyped bags.
 *
 * @example
 * const Score = Notes.key<number>("spam.score")
 * ctx.session.notes.set(Score, 4.2)
 * ctx.session.notes.get(Score) // 4.2 | undefined
 */
export interface Key<A> {
  readonly name: string
  /** Phantom: carries the value type. */
  readonly _A?: (_: A) => A
}

export const key = <A>(name: string): Key<A> => ({ name })

export interface Notes {
  readonly get: <A>(key: Key<A>) => A | undefined
  readonly set: <A>(key: Key<A>, value: A) => void
  readonly has: (key: Key<unknown>) => boolean
  readonly delete: (key: Key<unknown>) => void
}

export const make = (): Notes => {
  const map = new Map<string, unknown>()
  return {
    get: <A>(k: Key<A>) => map.get(k.name) as A | undefined,
    set: (k, value) => void map.set(k.name, value),
    has: (k) => map.has(k.name),
    delete: (k) => void map.delete(k.name)
  }
}
