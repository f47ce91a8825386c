import { describe, expect, it } from "@effect/vitest"
import * as Redis from "../../../src/ratelimit/Redis.ts"
import * as RedisUrl from "../../../src/ratelimit/RedisUrl.ts"

describe("Redis set-up helpers", () => {
  it("reads sentinel and cluster nodes as HOST:PORT (IPv6 in brackets), with the default port when none is given", () => {
    expect(RedisUrl.parseNode("10.0.0.1:26380", 26379)).toEqual({ host: "10.0.0.1", port: 26380 })
    expect(RedisUrl.parseNode("sentinel-a", 26379)).toEqual({ host: "sentinel-a", port: 26379 })
    expect(RedisUrl.parseNode("[fd00::1]:7000", 6379)).toEqual({ host: "fd00::1", port: 7000 })
    expect(RedisUrl.parseNode("10.0.0.1:0", 6379)).toMatch(/^invalid node "10\.0\.0\.1:0"; expected HOST:PORT$/)
    expect(RedisUrl.parseNode("fd00::1", 6379)).toMatch(/^invalid node/)
    expect(RedisUrl.parseNode("", 6379)).toMatch(/^invalid node/)
  })

  it("makes the key prefix a Cluster hash tag, keeping one the operator already chose", () => {
    expect(Redis.hashTagged("smtp-bridge:rl:")).toBe("{smtp-bridge:rl:}")
    expect(Redis.hashTagged("{tenant-a}:rl:")).toBe("{tenant-a}:rl:")
    // An empty tag is no hash tag (Redis hashes the whole key then): it is wrapped again.
    expect(Redis.hashTagged("{}rl:")).toBe("{{}rl:}")
  })
})
