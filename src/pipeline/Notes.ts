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

// One per session and per transaction, most of which never hold a note: the map comes with the
// first one, and the methods are shared (an idle session kept 4 closures and an empty Map, ~0.5 KB).
class Store implements Notes {
  private map: Map<string, unknown> | undefined = undefined
  get<A>(k: Key<A>): A | undefined {
    return this.map?.get(k.name) as A | undefined
  }
  set<A>(k: Key<A>, value: A): void {
    ;(this.map ??= new Map()).set(k.name, value)
  }
  has(k: Key<unknown>): boolean {
    return this.map?.has(k.name) ?? false
  }
  delete(k: Key<unknown>): void {
    this.map?.delete(k.name)
  }
}

export const make = (): Notes => new Store()
