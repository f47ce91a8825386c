// The http-hooks options for the message by URL: defaults, the listen address, and a signature
// requirement that needs a secret.
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { Options, parseListen } from "../../../plugins/http-hooks/options.ts"

const decode = Schema.decodeUnknownEither(Options, { onExcessProperty: "error" })
const hooks = [{ stage: "data", url: "http://127.0.0.1:8080/hook" }]

describe("http-hooks options: body and bodyServer", () => {
  it("defaults to the message inline and a loopback listener on any free port", () => {
    const o = Either.getOrThrow(decode({ hooks }))
    expect(o.body).toBe("inline")
    expect(o.bodyServer).toEqual({ listen: "127.0.0.1:0", requireSignature: false, maxConnections: 16 })
  })

  it("reads host:port and [v6]:port, and nothing else", () => {
    expect(parseListen("127.0.0.1:8025")).toEqual({ host: "127.0.0.1", port: 8025 })
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 })
    expect(parseListen("hooks.internal:80")).toEqual({ host: "hooks.internal", port: 80 })
    for (const bad of ["127.0.0.1", ":80", "::1:80", "127.0.0.1:65536", "a b:1", "127.0.0.1:80/x"]) expect(parseListen(bad)).toBeUndefined()
    expect(Either.isLeft(decode({ hooks, body: "url", bodyServer: { listen: "127.0.0.1" } }))).toBe(true)
  })

  it("refuses requireSignature without secret or secretEnv, and a baseUrl that is not http(s)", () => {
    expect(Either.isLeft(decode({ hooks, body: "url", bodyServer: { requireSignature: true } }))).toBe(true)
    expect(Either.isRight(decode({ hooks, secret: "a-test-key-of-32-characters-long", body: "url", bodyServer: { requireSignature: true } }))).toBe(true)
    expect(Either.isLeft(decode({ hooks, body: "url", bodyServer: { baseUrl: "ftp://x/" } }))).toBe(true)
    expect(Either.isLeft(decode({ hooks, body: "file" }))).toBe(true)
  })
})
