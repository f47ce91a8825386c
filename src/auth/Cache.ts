/**
 * The result cache of one password backend, as Dovecot's auth cache: what the backend answered
 * for a user and password, for a while, so that a client that logs in every minute (or a phone
 * retrying an old password) does not cost a directory bind each time.
 *
 * - The key is an HMAC-SHA256, under a random key of this process, of the user, the authorization
 *   identity, the password and the TLS state, each length-prefixed: no password is kept, no two
 *   (user, password) pairs share a key however their bytes are split ("ab"+"c" vs "a"+"bc"), and
 *   keys cannot be computed outside. So a password other than the cached one never answers from
 *   the cache: it goes to the backend.
 * - Accepted entries live `ttl`; refused and unknown ones `negativeTtl`. A refused entry refuses
 *   only that one password, so a flood of wrong guesses never locks the user out.
 * - When the backend accepts a user with a new password, the user's other accepted entries are
 *   dropped: after a password change, the old one stops working as soon as the new one is used.
 * - Accepted and refused entries are kept apart, each bounded by `maxEntries` (oldest out
 *   first): wrong guesses cannot push out the entries of real users.
 *
 * @example
 * const cache = Cache.make({ ttlMs: 60_000, negativeTtlMs: 10_000, maxEntries: 10_000 })
 * const key = cache.key({ username: "alice", authzid: undefined, password: "pw", tls: true })
 * cache.get(key, Date.now()) // undefined until `put`
 */
import { createHmac, randomBytes } from "node:crypto"
import type { Grant } from "../pipeline/Senders.ts"
import type { Verdict } from "../pipeline/Verdict.ts"

export interface Entry {
  readonly verdict: Verdict
  /** The senders the backend granted with an Accept, replayed on a hit. */
  readonly grant: Grant | undefined
  readonly expires: number
}

export interface Credentials {
  readonly username: string
  readonly authzid: string | undefined
  readonly password: string
  readonly tls: boolean
}

export interface Options {
  readonly ttlMs: number
  readonly negativeTtlMs: number
  readonly maxEntries: number
}

export interface Cache {
  readonly key: (credentials: Credentials) => string
  readonly get: (key: string, now: number) => Entry | undefined
  /** Records the backend's answer; `Defer` and `Disconnect` (nothing learnt) are never kept. */
  readonly put: (username: string, key: string, verdict: Verdict, grant: Grant | undefined, now: number) => void
  readonly size: () => { readonly positive: number; readonly negative: number }
}

const field = (text: string): string => `${Buffer.byteLength(text, "utf8")}:${text}`

export const make = (options: Options): Cache => {
  const secret = randomBytes(32)
  const positive = new Map<string, Entry & { readonly username: string }>()
  const negative = new Map<string, Entry>()
  // The accepted keys of each user, to drop the old password's entry when a new one is accepted.
  const byUser = new Map<string, Set<string>>()

  const forget = (key: string): void => {
    const entry = positive.get(key)
    if (entry === undefined) return
    positive.delete(key)
    const keys = byUser.get(entry.username)
    keys?.delete(key)
    if (keys !== undefined && keys.size === 0) byUser.delete(entry.username)
  }

  return {
    key: ({ username, authzid, password, tls }) =>
      createHmac("sha256", secret).update(field(username)).update(field(authzid ?? "")).update(field(password)).update(tls ? "T" : "P")
        .digest("base64"),
    get: (key, now) => {
      const entry = positive.get(key) ?? negative.get(key)
      if (entry === undefined) return undefined
      if (entry.expires > now) return entry
      if (positive.has(key)) forget(key)
      else negative.delete(key)
      return undefined
    },
    put: (username, key, verdict, grant, now) => {
      if (verdict._tag === "Accept") {
        if (options.ttlMs <= 0) return
        for (const other of byUser.get(username) ?? []) if (other !== key) forget(other)
        negative.delete(key)
        forget(key)
        positive.set(key, { verdict, grant, expires: now + options.ttlMs, username })
        let keys = byUser.get(username)
        if (keys === undefined) byUser.set(username, keys = new Set())
        keys.add(key)
        while (positive.size > options.maxEntries) forget(positive.keys().next().value!)
        return
      }
      if (verdict._tag === "Defer" || verdict._tag === "Disconnect" || options.negativeTtlMs <= 0) return
      negative.delete(key)
      negative.set(key, { verdict, grant: undefined, expires: now + options.negativeTtlMs })
      while (negative.size > options.maxEntries) negative.delete(negative.keys().next().value!)
    },
    size: () => ({ positive: positive.size, negative: negative.size })
  }
}
