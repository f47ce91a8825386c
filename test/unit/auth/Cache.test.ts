import { describe, expect, it } from "vitest"
import * as Cache from "../../../src/auth/Cache.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"

const accept = (identity: string) => Verdict.accept({ identity })
const refuse = Verdict.reject("Authentication credentials invalid", { code: 535, enhanced: "5.7.8" })
const credentials = (username: string, password: string, extra: Partial<Cache.Credentials> = {}): Cache.Credentials => ({
  username, password, authzid: undefined, tls: true, ...extra
})

describe("the authentication result cache", () => {
  const make = (options: Partial<Cache.Options> = {}) => Cache.make({ ttlMs: 60_000, negativeTtlMs: 10_000, maxEntries: 100, ...options })

  it("answers the same user and password from the cache until the TTL, then asks again", () => {
    const cache = make()
    const key = cache.key(credentials("alice", "pw"))
    cache.put("alice", key, accept("alice"), undefined, 0)
    expect(cache.get(key, 59_999)?.verdict).toEqual(accept("alice"))
    expect(cache.get(key, 60_000)).toBeUndefined()
  })

  it("keys on every part, length-prefixed: no other password, authzid, TLS state or split of the same bytes shares a key", () => {
    const cache = make()
    const keys = [
      cache.key(credentials("alice", "pw")),
      cache.key(credentials("alice", "pw2")),
      cache.key(credentials("alic", "epw")),
      cache.key(credentials("alice", "pw", { authzid: "bob" })),
      cache.key(credentials("alice", "pw", { tls: false })),
      cache.key(credentials("alice\u0000", "pw")),
      cache.key(credentials("Alice", "pw"))
    ]
    expect(new Set(keys).size).toBe(keys.length)
    // Keys are no hash of the password alone: another process (another random key) gives others.
    expect(make().key(credentials("alice", "pw"))).not.toBe(keys[0])
    // A digest (SHA-256, base64) whatever the input's length: nothing of the password is kept.
    expect(keys.every((k) => k.length === 44)).toBe(true)
    expect(cache.key(credentials("alice", "a password much longer than the digest itself"))).toHaveLength(44)
  })

  it("drops a user's other accepted passwords when a new one is accepted (a changed password)", () => {
    const cache = make()
    const old = cache.key(credentials("alice", "old"))
    const fresh = cache.key(credentials("alice", "new"))
    cache.put("alice", old, accept("alice"), undefined, 0)
    cache.put("alice", fresh, accept("alice"), undefined, 1)
    expect(cache.get(old, 2)).toBeUndefined()
    expect(cache.get(fresh, 2)).toBeDefined()
  })

  it("never keeps a deferral, and keeps refusals only negativeTtl", () => {
    const cache = make()
    const key = cache.key(credentials("alice", "x"))
    cache.put("alice", key, Verdict.defer("Temporary authentication failure", { code: 454, enhanced: "4.7.0" }), undefined, 0)
    expect(cache.get(key, 1)).toBeUndefined()
    cache.put("alice", key, refuse, undefined, 0)
    expect(cache.get(key, 9_999)?.verdict).toEqual(refuse)
    expect(cache.get(key, 10_000)).toBeUndefined()
    const off = make({ negativeTtlMs: 0 })
    off.put("alice", key, refuse, undefined, 0)
    expect(off.get(key, 0)).toBeUndefined()
  })

  it("stays bounded, and a flood of refusals never pushes out an accepted entry", () => {
    const cache = make({ maxEntries: 10 })
    const good = cache.key(credentials("alice", "pw"))
    cache.put("alice", good, accept("alice"), undefined, 0)
    for (let i = 0; i < 1000; i++) cache.put("alice", cache.key(credentials("alice", `guess-${i}`)), refuse, undefined, 0)
    for (let i = 0; i < 1000; i++) cache.put(`user-${i}`, cache.key(credentials(`user-${i}`, "pw")), accept(`user-${i}`), undefined, 0)
    expect(cache.size()).toEqual({ positive: 10, negative: 10 })
    const survivor = make({ maxEntries: 10 })
    survivor.put("alice", good, accept("alice"), undefined, 0)
    for (let i = 0; i < 1000; i++) survivor.put("alice", survivor.key(credentials("alice", `guess-${i}`)), refuse, undefined, 0)
    expect(survivor.get(good, 1)?.verdict).toEqual(accept("alice"))
  })
})
