// The Redis store on a real Redis Cluster of three primaries: one decision over keys that would
// hash to three different slots stays one atomic script, because the store's prefix becomes a
// hash tag ({smtp-bridge:rl:}), and the client follows the cluster to the slot's owner whichever
// node the URL names.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, LogLevel, Scope } from "effect"
import * as RedisStore from "../../../src/ratelimit/RedisStore.ts"
import type { Request, Store } from "../../../src/ratelimit/Store.ts"
import { until } from "../../support/eventually.ts"
import { cli, startCluster, type TestCluster } from "../../support/redisSets.ts"

const perMinute = (key: string, count: number, cost = 1): Request => ({ key, rate: { count, periodMs: 60_000 }, cost })

describe("Redis store on a 3-primary Redis Cluster", () => {
  let cluster: TestCluster
  let scope: Scope.CloseableScope
  const stores: Array<Store> = []

  beforeAll(async () => {
    cluster = await startCluster()
    scope = await Effect.runPromise(Scope.make())
    // One store per node given as the URL: each must reach the slot's owner.
    for (const node of cluster.nodes) {
      stores.push(await Effect.runPromise(
        RedisStore.make({ url: node.url, cluster: {} }).pipe(Scope.extend(scope), Logger.withMinimumLogLevel(LogLevel.None), Effect.orDie)
      ))
    }
  }, 60_000)
  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    await cluster?.stop()
  })

  const update = async (store: Store, mode: "peek" | "consume" | "acquire", requests: ReadonlyArray<Request>) => {
    const result = await Effect.runPromise(Effect.either(store.update(mode, requests)))
    if (result._tag === "Left") throw new Error(`store failed: ${result.left.message}`)
    return result.right
  }

  it("the keys of one decision would live in three different slots without the hash tag", async () => {
    const slots = new Set<string>()
    for (const key of ["user:alice", "ip:192.0.2.0/24", "domain:example.org"]) {
      slots.add((await cli(cluster.nodes[0]!.port, "CLUSTER", "KEYSLOT", `smtp-bridge:rl:${key}`)).trim())
    }
    expect(slots.size).toBe(3)
  })

  it("decides user, network and sender domain in one atomic acquire: all or none, shared by every node's client", async () => {
    const keys = [perMinute("user:alice", 2), perMinute("ip:192.0.2.0/24", 5), perMinute("domain:example.org", 5)]
    expect((await update(stores[0]!, "acquire", keys)).map((r) => r.allowed)).toEqual([true, true, true])
    expect((await update(stores[1]!, "acquire", keys)).map((r) => r.allowed)).toEqual([true, true, true])
    // alice's 2/minute is spent: the acquire takes from none of the three.
    const refused = await update(stores[2]!, "acquire", keys)
    expect(refused.map((r) => r.allowed)).toEqual([false, false, false])
    expect(refused.map((r) => r.used)).toEqual([2, 2, 2])
    expect((await update(stores[0]!, "peek", [perMinute("ip:192.0.2.0/24", 5)]))[0]!.used).toBe(2)
  })

  it("stores every key under the hash tag, in the one slot that tag names", async () => {
    const slot = (await cli(cluster.nodes[0]!.port, "CLUSTER", "KEYSLOT", "{smtp-bridge:rl:}user:alice")).trim()
    const owner = [] as Array<number>
    for (const node of cluster.nodes) {
      const count = Number((await cli(node.port, "CLUSTER", "COUNTKEYSINSLOT", slot)).trim())
      if (count > 0) owner.push(count)
    }
    expect(owner).toEqual([3])
  })

  it("fails fast while the primary of its slot is down, and decides again by itself once it is back", async () => {
    const slot = (await cli(cluster.nodes[0]!.port, "CLUSTER", "KEYSLOT", "{smtp-bridge:rl:}user:alice")).trim()
    const counts = await Promise.all(cluster.nodes.map(async (n) => Number((await cli(n.port, "CLUSTER", "COUNTKEYSINSLOT", slot)).trim())))
    const owner = cluster.nodes[counts.findIndex((c) => c > 0)]!
    await owner.kill()
    const started = Date.now()
    const during = await Effect.runPromise(Effect.either(stores[0]!.update("peek", [perMinute("user:alice", 2)])))
    expect(during._tag).toBe("Left")
    // Fails within the command timeout (1 s), never waiting for the cluster to heal.
    expect(Date.now() - started).toBeLessThan(1_500)
    await owner.start()
    await until("the store to decide again", async () => (await Effect.runPromise(Effect.either(stores[0]!.update("peek", [perMinute("user:alice", 2)]))))._tag === "Right", { timeout: 30_000 })
  }, 60_000)

  it("is atomic under concurrency across clients: 30 simultaneous acquires of a 10/minute key let exactly 10 through", async () => {
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => update(stores[i % 3]!, "acquire", [perMinute("race", 10)])))
    expect(results.filter((r) => r[0]!.allowed)).toHaveLength(10)
  })
})
