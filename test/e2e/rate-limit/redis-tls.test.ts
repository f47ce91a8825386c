// The Redis store over TLS (rediss://) with an ACL user, against a real redis-server that serves
// TLS with a self-signed certificate and has its default user switched off: the store trusts the
// CA file it is given (and refuses the certificate without it), and logs in as the URL's user.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger, LogLevel } from "effect"
import * as RedisStore from "../../../src/ratelimit/RedisStore.ts"
import type { Request, Store } from "../../../src/ratelimit/Store.ts"
import { testCertificate } from "../../support/certs.ts"
import { startRedis, type TestRedis } from "../../support/redis.ts"
import { freePort } from "../../support/runtimes.ts"

const perMinute = (key: string, count: number): Request => ({ key, rate: { count, periodMs: 60_000 }, cost: 1 })

describe("Redis store over TLS with an ACL user", () => {
  let redis: TestRedis
  let tlsPort: number
  const { cert, key } = testCertificate()

  beforeAll(async () => {
    tlsPort = await freePort()
    redis = await startRedis({
      args: [
        "--tls-port", String(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
        // No default user; bridge may touch only the rate-limit keys, with the commands the store and its script use.
        "--user", "default", "off",
        "--user", "bridge", "on", ">s3cr@t", "~smtp-bridge:rl:*", "+@scripting", "+@connection", "+info", "+select",
        "+time", "+get", "+set", "+del"
      ]
    })
  })
  afterAll(() => redis.stop())

  const withStore = <A>(options: Omit<RedisStore.RedisStoreOptions, "connectTimeout">, use: (store: Store) => Effect.Effect<A, unknown>) =>
    Effect.runPromise(
      Effect.scoped(Effect.flatMap(Effect.orDie(RedisStore.make({ ...options, connectTimeout: "2 seconds" })), use)).pipe(
        Logger.withMinimumLogLevel(LogLevel.None),
        Effect.either
      )
    )

  it("counts over rediss:// as the URL's ACL user, trusting the given CA", async () => {
    const url = `rediss://bridge:${encodeURIComponent("s3cr@t")}@localhost:${tlsPort}`
    const twice = (store: Store) =>
      Effect.zipRight(store.update("consume", [perMinute("tls", 5)]), store.update("peek", [perMinute("tls", 5)]))
    const result = await withStore({ url, tlsCa: cert }, twice)
    expect(Either.map(result, (r) => r[0]!.used)).toEqual(Either.right(1))
  })

  it("refuses a certificate it cannot verify (no CA given): unavailable, never counting in the clear", async () => {
    const result = await withStore({ url: `rediss://bridge:s3cr%40t@localhost:${tlsPort}` }, (store) => store.update("peek", [perMinute("tls", 5)]))
    expect(Either.isLeft(result) && (result.left as { reason?: string }).reason).toBe("Unavailable")
  })

  it("reports a wrong ACL password as unavailable, never echoing it", async () => {
    const result = await withStore(
      { url: `rediss://bridge:hunter2@localhost:${tlsPort}`, tlsCa: cert },
      (store) => store.update("peek", [perMinute("tls", 5)])
    )
    expect(Either.isLeft(result)).toBe(true)
    expect(JSON.stringify(result)).not.toContain("hunter2")
  })
})
