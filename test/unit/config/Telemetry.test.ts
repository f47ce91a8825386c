import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Load from "../../../src/config/Load.ts"
import * as Resolve from "../../../src/config/Resolve.ts"
import * as Telemetry from "../../../src/config/Telemetry.ts"

const failure = (input: unknown) => Effect.flip(Resolve.resolve(input, "test.config.ts"))

describe("telemetry config", () => {
  it.effect("is off unless given", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({}, "test")
      expect(config.telemetry).toBeUndefined()
      expect(Telemetry.describe(config.telemetry)).toBe("off")
    }))

  it.effect("defaults the service name to smtp-bridge and sends spans to the endpoint's /v1/traces", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({ telemetry: { otlpEndpoint: "http://collector:4318" } }, "test")
      expect(config.telemetry).toEqual({
        otlpEndpoint: "http://collector:4318",
        tracesUrl: "http://collector:4318/v1/traces",
        serviceName: "smtp-bridge",
        headers: {}
      })
    }))

  it.effect("keeps a service name and headers as given", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({
        telemetry: { otlpEndpoint: "https://otlp.example", serviceName: "mx-edge", headers: { "x-api-key": "k" } }
      }, "test")
      expect(config.telemetry?.serviceName).toBe("mx-edge")
      expect(config.telemetry?.headers).toEqual({ "x-api-key": "k" })
    }))

  it("puts /v1/traces after the endpoint's path, unless the endpoint names it already", () => {
    expect(Telemetry.tracesUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/v1/traces")
    expect(Telemetry.tracesUrl("http://127.0.0.1:4318/")).toBe("http://127.0.0.1:4318/v1/traces")
    expect(Telemetry.tracesUrl("https://gateway.example/otlp/")).toBe("https://gateway.example/otlp/v1/traces")
    expect(Telemetry.tracesUrl("https://gateway.example/otlp/v1/traces")).toBe("https://gateway.example/otlp/v1/traces")
  })

  it("describes where spans go without the query string, which may carry a token", () => {
    const telemetry = { otlpEndpoint: "", tracesUrl: "https://c.example/v1/traces?token=abc", serviceName: "s", headers: {} }
    expect(Telemetry.describe(telemetry)).toBe("https://c.example/v1/traces")
  })

  it("--otlp-endpoint replaces the file's endpoint and keeps its service name and headers", () => {
    const file = { telemetry: { otlpEndpoint: "http://a:4318", serviceName: "mx", headers: { "x-api-key": "k" } } }
    expect(Load.merge(file, { telemetry: { otlpEndpoint: "http://b:4318" } })).toEqual({
      telemetry: { otlpEndpoint: "http://b:4318", serviceName: "mx", headers: { "x-api-key": "k" } }
    })
  })

  describe("reports the first invalid field in one line, never showing a header's value", () => {
    const endpoint = "expected an http:// or https:// URL of an OTLP/HTTP collector without credentials, like http://127.0.0.1:4318"
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      ["an OTLP/gRPC endpoint", { telemetry: { otlpEndpoint: "grpc://collector:4317" } },
        `Invalid config: telemetry.otlpEndpoint: ${endpoint}, got "grpc://collector:4317" (test.config.ts)`],
      ["an endpoint that is not a URL", { telemetry: { otlpEndpoint: "collector:4318" } },
        `Invalid config: telemetry.otlpEndpoint: ${endpoint}, got "collector:4318" (test.config.ts)`],
      ["an endpoint with credentials, its password masked", { telemetry: { otlpEndpoint: "https://user:hunter2@collector.example" } },
        `Invalid config: telemetry.otlpEndpoint: ${endpoint}, got "https://****@collector.example" (test.config.ts)`],
      ["telemetry without an endpoint", { telemetry: { serviceName: "mx" } },
        `Invalid config: telemetry.otlpEndpoint: ${endpoint}, got nothing (test.config.ts)`],
      ["telemetry as a bare URL", { telemetry: "http://collector:4318" },
        "Invalid config: telemetry: expected { otlpEndpoint, serviceName?, headers? }, got \"http://collector:4318\" (test.config.ts)"],
      ["an empty service name", { telemetry: { otlpEndpoint: "http://c:4318", serviceName: " " } },
        "Invalid config: telemetry.serviceName: expected a non-empty string, got \" \" (test.config.ts)"],
      ["a header value that would break the line", { telemetry: { otlpEndpoint: "http://c:4318", headers: { "x-api-key": "k1\r\nX-Evil: 1" } } },
        "Invalid config: telemetry.headers[\"x-api-key\"]: expected a header value: a string on one line, got \"(hidden)\" (test.config.ts)"],
      ["a header name that is not a token", { telemetry: { otlpEndpoint: "http://c:4318", headers: { "api key": "k1" } } },
        "Invalid config: telemetry.headers[\"api key\"]: expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), got \"(hidden)\" (test.config.ts)"],
      ["a misspelt option", { telemetry: { otlpEndpoint: "http://c:4318", endpoint: "x" } },
        "Invalid config: telemetry.endpoint: unknown option, expected one of otlpEndpoint, serviceName, headers (test.config.ts)"]
    ]
    for (const [name, input, message] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const error = yield* failure(input)
          expect(error.reason).toBe("Invalid")
          expect(error.message).toBe(message)
          expect(error.message).not.toContain("\n")
          expect(error.message).not.toContain("hunter2")
          expect(error.message).not.toContain("k1")
        }))
    }
  })
})
