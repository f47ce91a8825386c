import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Os from "node:os"
import { definePlugin } from "../../../src/pipeline/Plugin.ts"
import * as Resolve from "../../../src/config/Resolve.ts"

const failure = (input: unknown) => Effect.flip(Resolve.resolve(input, "test.config.ts"))

describe("Resolve", () => {
  it.effect("fills safe defaults for an empty config", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({}, "test")
      expect(config.hostname).toBe(Os.hostname())
      expect(config.listeners).toEqual([{ host: "127.0.0.1", port: 2525, mode: "plain" }])
      expect(config.tls).toBeUndefined()
      expect(config.allowInsecureAuth).toBe(false)
      expect(config.watchConfig).toBe(false)
      expect(config.users).toBeUndefined()
      expect(config.trust).toEqual([])
      expect(config.senders).toEqual({})
      expect(config.forgedFrom).toBe("reject")
      expect(config.maildir).toBe("./mail")
      expect(config.bareLineEndings).toBe("normalize")
      expect(config.plugins).toEqual([])
      expect(config.tempDir).toBeUndefined()
      const { greetingTimeout, idleTimeout, commandTimeout, dataTimeout, transferTimeout, ...sizes } = config.limits
      expect(sizes).toEqual({
        maxMessageSize: 26214400,
        maxRecipients: 100,
        maxLineLength: 4096,
        maxConnections: 1000,
        maxConnectionsPerIp: 50,
        maxConnectionsPerNetwork: 100,
        ipv4NetworkPrefix: 24,
        ipv6NetworkPrefix: 64,
        maxInvalidCommands: 10,
        maxAuthFailures: 3,
        spillThreshold: 262144
      })
      expect(Duration.toMillis(greetingTimeout)).toBe(30_000)
      expect(Duration.toMillis(idleTimeout)).toBe(300_000)
      expect(Duration.toMillis(commandTimeout)).toBe(60_000)
      expect(Duration.toMillis(dataTimeout)).toBe(600_000)
      expect(Duration.toMillis(transferTimeout)).toBe(1_800_000)
      expect(Duration.toMillis(config.shutdownTimeout)).toBe(30_000)
    }))

  it.effect("accepts human sizes and durations", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({
        limits: { maxMessageSize: "10MB", spillThreshold: "512KB", idleTimeout: "2 minutes", dataTimeout: 1500 },
        shutdownTimeout: "0 seconds"
      }, "test")
      expect(config.limits.maxMessageSize).toBe(10 * 1024 * 1024)
      expect(config.limits.spillThreshold).toBe(512 * 1024)
      expect(Duration.toMillis(config.limits.idleTimeout)).toBe(120_000)
      expect(Duration.toMillis(config.limits.dataTimeout)).toBe(1500)
      expect(Duration.toMillis(config.shutdownTimeout)).toBe(0)
    }))

  it.effect("turns listen and listenTls into plain and implicit listeners, IPv6 without brackets", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({
        listen: ["0.0.0.0:587", "[::1]:2525"],
        listenTls: ["mx.example.com:465"],
        tls: { cert: "cert.pem", key: "key.pem" }
      }, "test")
      expect(config.listeners).toEqual([
        { host: "0.0.0.0", port: 587, mode: "plain" },
        { host: "::1", port: 2525, mode: "plain" },
        { host: "mx.example.com", port: 465, mode: "implicit" }
      ])
    }))

  it.effect("adds no default plain listener when only listenTls is given", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({ listenTls: ["0.0.0.0:465"], tls: { cert: "c", key: "k" } }, "test")
      expect(config.listeners).toEqual([{ host: "0.0.0.0", port: 465, mode: "implicit" }])
    }))

  it.effect("keeps plugins as given", () =>
    Effect.gen(function*() {
      const plugin = definePlugin({ name: "noop" })
      const config = yield* Resolve.resolve({ plugins: [plugin] }, "test")
      expect(config.plugins[0]).toBe(plugin)
    }))

  describe("reports the first invalid field in one line", () => {
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      ["a negative recipient limit", { limits: { maxRecipients: -1 } },
        "Invalid config: limits.maxRecipients: expected a positive integer, got -1 (test.config.ts)"],
      ["a fractional limit", { limits: { maxConnections: 1.5 } },
        "Invalid config: limits.maxConnections: expected a positive integer, got 1.5 (test.config.ts)"],
      ["a line length below RFC 5321's 512", { limits: { maxLineLength: 100 } },
        "Invalid config: limits.maxLineLength: expected an integer of at least 512 (the RFC 5321 minimum), got 100 (test.config.ts)"],
      ["a per-network limit of zero", { limits: { maxConnectionsPerNetwork: 0 } },
        "Invalid config: limits.maxConnectionsPerNetwork: expected a positive integer, got 0 (test.config.ts)"],
      ["an IPv4 network prefix past 32", { limits: { ipv4NetworkPrefix: 33 } },
        "Invalid config: limits.ipv4NetworkPrefix: expected a prefix length from 0 to 32, got 33 (test.config.ts)"],
      ["a fractional IPv6 network prefix", { limits: { ipv6NetworkPrefix: 48.5 } },
        "Invalid config: limits.ipv6NetworkPrefix: expected a prefix length from 0 to 128, got 48.5 (test.config.ts)"],
      ["a command timeout of zero", { limits: { commandTimeout: 0 } },
        "Invalid config: limits.commandTimeout: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds above 0, got 0 (test.config.ts)"],
      ["a size in unknown units", { limits: { maxMessageSize: "25 parsecs" } },
        "Invalid config: limits.maxMessageSize: expected a positive size in bytes, or a string like \"25MB\", got \"25 parsecs\" (test.config.ts)"],
      ["a duration that Effect cannot read", { limits: { idleTimeout: "soon" } },
        "Invalid config: limits.idleTimeout: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds above 0, got \"soon\" (test.config.ts)"],
      ["a port above 65535", { listen: ["127.0.0.1:70000"] },
        "Invalid config: listen[0]: expected HOST:PORT like 127.0.0.1:2525 or [::1]:2525, with a port from 0 to 65535, got \"127.0.0.1:70000\" (test.config.ts)"],
      ["IPv6 without brackets", { listen: ["127.0.0.1:25", "::1:25"] },
        "Invalid config: listen[1]: expected HOST:PORT like 127.0.0.1:2525 or [::1]:2525, with a port from 0 to 65535, got \"::1:25\" (test.config.ts)"],
      ["listen that is not an array", { listen: "127.0.0.1:25" },
        "Invalid config: listen: expected an array of HOST:PORT strings, got \"127.0.0.1:25\" (test.config.ts)"],
      ["a bad host name", { hostname: "mx_example..com" },
        "Invalid config: hostname: expected a host name like mx.example.com, got \"mx_example..com\" (test.config.ts)"],
      ["a bad CIDR", { trust: ["10.0.0.0/8", "10.0.0.0/33"] },
        "Invalid config: trust[1]: expected a CIDR like 10.0.0.0/8, got \"10.0.0.0/33\" (test.config.ts)"],
      ["a bad sender pattern", { senders: { "alice@example.com": ["@example.com", "nobody"] } },
        "Invalid config: senders[\"alice@example.com\"][1]: expected an address (alice@example.com), a domain (@example.com) or *, got \"nobody\" (test.config.ts)"],
      ["a bad forgedFrom", { forgedFrom: "sign" },
        "Invalid config: forgedFrom: expected \"reject\" or \"unsigned\", got \"sign\" (test.config.ts)"],
      ["a bad dkimSign.trustedFrom network", { dkimSign: { keys: [{ domain: "example.com", selector: "s", keyFile: "k.pem" }], trustedFrom: { "10.0.0.0/33": ["*"] } } },
        "Invalid config: dkimSign.trustedFrom[\"10.0.0.0/33\"]: expected a CIDR like 10.0.0.0/8 as the key (flag: CIDR=SENDER), got \"10.0.0.0/33\" (test.config.ts)"],
      ["a bad dkimSign.trustedFrom sender", { dkimSign: { keys: [{ domain: "example.com", selector: "s", keyFile: "k.pem" }], trustedFrom: { "10.0.0.0/8": ["example.com"] } } },
        "Invalid config: dkimSign.trustedFrom[\"10.0.0.0/8\"]: expected an array of addresses (a@example.com), domains (@example.com) or *, got an array (test.config.ts)"],
      ["a bad bareLineEndings", { bareLineEndings: "ignore" },
        "Invalid config: bareLineEndings: expected \"normalize\" or \"reject\", got \"ignore\" (test.config.ts)"],
      ["a tls without key", { tls: { cert: "c.pem" } },
        "Invalid config: tls.key: expected a file path, got nothing (test.config.ts)"],
      ["a non-boolean allowInsecureAuth", { allowInsecureAuth: "yes" },
        "Invalid config: allowInsecureAuth: expected true or false, got \"yes\" (test.config.ts)"],
      ["a non-boolean watchConfig", { watchConfig: "on" },
        "Invalid config: watchConfig: expected true or false, got \"on\" (test.config.ts)"],
      ["a plugin without a name", { plugins: [{ name: "ok" }, { rcptTo: () => 1 }] },
        "Invalid config: plugins[1]: expected a plugin: an object with a string name and function hooks, as definePlugin returns, got an object (test.config.ts)"],
      ["a config that is not an object", 42,
        "Invalid config: config: expected an object (the config file's default export), got 42 (test.config.ts)"],
      ["a bad rate in a built-in plugin's options (rate-limit's schema)", { rateLimit: { perUser: "100/week" } },
        "Invalid config: rateLimit.perUser: expected a rate like \"100/hour\" or an array of rates (invalid rate \"100/week\"; expected COUNT/PERIOD with PERIOD one of second, minute, hour, day (e.g. \"100/hour\", \"1000 recipients/day\", \"5/10 minutes\")), got \"100/week\" (test.config.ts)"],
      ["a misspelt rate-limit option", { rateLimit: { perUsers: "100/hour" } },
        "Invalid config: rateLimit.perUsers: unknown option, expected one of connections, perIp, perUser, perSenderDomain, recipients, limits, users, ipv4Prefix, ipv6Prefix, exempt, authFailures, redis, maxKeys, store, onStoreError (test.config.ts)"],
      ["a bad verify policy action, past the boolean form", { verify: { policy: { spfFail: "bounce" } } },
        "Invalid config: verify.policy.spfFail: expected \"accept\", \"tag\", \"reject\" or \"defer\", got \"bounce\" (test.config.ts)"],
      ["dkimSign without keys", { dkimSign: {} },
        "Invalid config: dkimSign.keys: expected at least one { domain, selector, keyFile }, got nothing (test.config.ts)"],
      ["an arcSeal without a key", { arcSeal: { domain: "example.org", selector: "arc1" } },
        "Invalid config: arcSeal: expected arc-seal options: { domain, selector, keyFile } (keyFile or privateKey is required), got an object (test.config.ts)"],
      ["a route with a bad network", { routes: [{ transport: "default", network: ["10.0.0.0/33"] }] },
        "Invalid config: routes[0].network[0]: expected a CIDR like 10.0.0.0/8, got \"10.0.0.0/33\" (test.config.ts)"],
      ["listenTls without tls", { listenTls: ["0.0.0.0:465"] },
        "Invalid config: tls: expected { cert, key } because listenTls is set, got nothing (test.config.ts)"],
      ["users without TLS or allowInsecureAuth", { users: "users.htpasswd" },
        "Invalid config: tls: expected { cert, key } so that AUTH can be offered to users (or allowInsecureAuth: true), got nothing (test.config.ts)"],
      ["no listener at all", { listen: [] },
        "Invalid config: listen: expected at least one HOST:PORT, got an empty list (test.config.ts)"],
      ["two listeners on one address", { listen: ["127.0.0.1:25", "127.0.0.1:25"] },
        "Invalid config: listen[1]: expected an address no other listener uses, got \"127.0.0.1:25\" (test.config.ts)"]
    ]
    for (const [name, input, message] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const error = yield* failure(input)
          expect(error._tag).toBe("ConfigError")
          expect(error.reason).toBe("Invalid")
          expect(error.message).toBe(message)
          expect(error.message).not.toContain("\n")
        }))
    }
  })

  it.effect("names the field, what it expects and the source separately", () =>
    Effect.gen(function*() {
      const error = yield* failure({ limits: { maxRecipients: -1 } })
      expect(error.field).toBe("limits.maxRecipients")
      expect(error.expected).toBe("a positive integer")
      expect(error.source).toBe("test.config.ts")
    }))

  it.effect("rejects a misspelt option and lists the known ones", () =>
    Effect.gen(function*() {
      const error = yield* failure({ limits: { maxRecipent: 5 } })
      expect(error.field).toBe("limits.maxRecipent")
      expect(error.message).toMatch(/^Invalid config: limits\.maxRecipent: unknown option, expected one of maxMessageSize, maxRecipients, /)
    }))

  it.effect("allows users without TLS when insecure AUTH is explicit", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({ users: "u.htpasswd", allowInsecureAuth: true }, "test")
      expect(config.users).toBe("u.htpasswd")
    }))
})
