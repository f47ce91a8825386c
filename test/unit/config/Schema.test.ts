import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Duration, Either, Schema } from "effect"
import type { ConfigInput } from "../../../src/index.ts"
import type { BridgeConfig } from "../../../src/config/Config.ts"
import { Config, defaults } from "../../../src/config/Schema.ts"
import * as Units from "../../../src/util/Units.ts"

describe("the config schema", () => {
  it("is the config file's type: ConfigInput is its encoded side and BridgeConfig's fields its type side", () => {
    expectTypeOf<ConfigInput>().toEqualTypeOf<typeof Config.Encoded>()
    expectTypeOf<BridgeConfig["limits"]>().toEqualTypeOf<(typeof Config.Type)["limits"]>()
    expectTypeOf<BridgeConfig["limits"]["idleTimeout"]>().toEqualTypeOf<Duration.Duration>()
    expectTypeOf<NonNullable<ConfigInput["limits"]>["maxMessageSize"]>().toEqualTypeOf<string | number | undefined>()
  })

  it("fills every limit's default when limits is absent, and when it is partly given", () => {
    const empty = Schema.decodeUnknownSync(Config)({})
    expect(empty.limits.maxMessageSize).toBe(26214400)
    expect(Duration.toMillis(empty.limits.idleTimeout)).toBe(300_000)
    expect(empty.trust).toEqual([])
    expect(empty.maildir).toBe(defaults.maildir)
    const partial = Schema.decodeUnknownSync(Config)({ limits: { maxRecipients: 5 } })
    expect(partial.limits.maxRecipients).toBe(5)
    expect(partial.limits.maxLineLength).toBe(4096)
    expect(Duration.toMillis(partial.limits.transferTimeout)).toBe(1_800_000)
  })

  it("decodes \"25MB\" to bytes and \"5 minutes\" to a Duration, and encodes them back as bytes and milliseconds", () => {
    const decoded = Schema.decodeUnknownSync(Config)({ limits: { maxMessageSize: "1.5KB", idleTimeout: "2 minutes" }, verify: true })
    expect(decoded.limits.maxMessageSize).toBe(1536)
    expect(Duration.toMillis(decoded.limits.idleTimeout)).toBe(120_000)
    expect(decoded.verify).toEqual({ skipAuthenticated: false, skipTrusted: false })
    const encoded = Schema.encodeSync(Config)(decoded)
    expect(encoded.limits?.maxMessageSize).toBe(1536)
    expect(encoded.limits?.idleTimeout).toBe(120_000)
  })

  it("gives a spool written as a directory, or as a partial object, every retry default", () => {
    const short = Schema.decodeUnknownSync(Config)({ spool: "/var/spool/sb" }).spool
    expect(short).toEqual({
      dir: "/var/spool/sb", initialDelay: Duration.minutes(5), maxDelay: Duration.hours(1), maxAge: Duration.days(5), concurrency: 4,
      minFreeSpace: 1048576
    })
    const long = Schema.decodeUnknownSync(Config)({ spool: { dir: "/q", maxAge: "2 days", minFreeSpace: "10MB" } }).spool
    expect(long).toMatchObject({ dir: "/q", maxAge: Duration.days(2), minFreeSpace: 10485760, concurrency: 4 })
  })

  it("reports a bad spool field at its own path rather than as a bad directory", () => {
    const result = Schema.decodeUnknownEither(Config)({ spool: { dir: "/q", maxAge: "soon" } })
    expect(Either.isLeft(result) && String(result.left)).toContain("maxAge")
  })

  it("derives the telemetry traces URL and default service name while decoding", () => {
    const telemetry = Schema.decodeUnknownSync(Config)({ telemetry: { otlpEndpoint: "http://127.0.0.1:4318" } }).telemetry
    expect(telemetry).toEqual({ otlpEndpoint: "http://127.0.0.1:4318", tracesUrl: "http://127.0.0.1:4318/v1/traces", serviceName: "smtp-bridge", headers: {} })
  })

  it("turns verify: false into no verification", () => {
    expect(Schema.decodeUnknownSync(Config)({ verify: false }).verify).toBeUndefined()
  })
})

describe("Units", () => {
  it("reads sizes with K, M and G as powers of 1024 and refuses other units", () => {
    expect(Units.parseSize("25MB")).toBe(26214400)
    expect(Units.parseSize(" 512 kb ")).toBe(524288)
    expect(Units.parseSize("1GiB")).toBe(1073741824)
    expect(Units.parseSize("25 parsecs")).toBeUndefined()
    expect(Units.parseSize(-1)).toBeUndefined()
  })

  it("reads durations as milliseconds or Effect strings, refusing negative and infinite ones", () => {
    expect(Units.parseDuration("5 minutes")).toEqual(Duration.minutes(5))
    expect(Units.parseDuration(1500)).toEqual(Duration.millis(1500))
    expect(Units.parseDuration(-1)).toBeUndefined()
    expect(Units.parseDuration("soon")).toBeUndefined()
    expect(Units.parseDuration(Duration.infinity)).toBeUndefined()
  })

  it("Duration refuses zero, durationWith(true) allows it; Size decodes to bytes", () => {
    expect(Either.isLeft(Schema.decodeUnknownEither(Units.Duration)(0))).toBe(true)
    expect(Schema.decodeUnknownSync(Units.durationWith(true))("0 seconds")).toEqual(Duration.zero)
    expect(Schema.decodeUnknownSync(Units.Size)("2KB")).toBe(2048)
  })
})
