import { describe, expect, it } from "vitest"
import * as Redact from "../../../src/util/Redact.ts"

describe("Redact.url", () => {
  it("hides the whole userinfo up to the last @, whatever the password holds", () => {
    for (const password of ["p/w", "p?w", "p@w", "p%w", "p:w", "p#w"]) {
      expect(Redact.url(`smtp://bob:${password}@relay.example:587`)).toBe("smtp://****@relay.example:587")
    }
    expect(Redact.url("https://apikey@hooks.example")).toBe("https://****@hooks.example")
  })

  it("hides query values (keeping the relay URL's own settings) and fragments", () => {
    expect(Redact.url("https://h.example/?token=abc&flag")).toBe("https://h.example/?token=****&****")
    expect(Redact.url("smtp://relay.example?tls=required&ca=/etc/ca.pem")).toBe("smtp://relay.example?tls=required&ca=/etc/ca.pem")
    expect(Redact.url("https://h.example/in#frag")).toBe("https://h.example/****#****")
  })

  it("shows an http(s) path as /**** and keeps other schemes' paths and the URL as written", () => {
    expect(Redact.url("https://hooks.example:8443/services/T0/B0/XXXX")).toBe("https://hooks.example:8443/****")
    expect(Redact.url("http://collector:4318")).toBe("http://collector:4318")
    expect(Redact.url("http://collector:4318/")).toBe("http://collector:4318/")
    expect(Redact.url("lmtp:///var/run/lmtp.sock")).toBe("lmtp:///var/run/lmtp.sock")
  })

  it("cuts a URL the parser refuses by hand and never shows a host that does not look like one", () => {
    expect(Redact.url("smtp://relay.example:99999/x")).toBe("smtp://relay.example:99999/x")
    expect(Redact.url("https://bad host/x?t=1")).toBe("https://****/****?t=****")
  })
})

describe("Redact.value", () => {
  it("hides secret fields whatever their type, and header values", () => {
    expect(Redact.value("transports.api.secret", 42)).toBe(Redact.hidden)
    expect(Redact.value("webhookSecret", "s")).toBe(Redact.hidden)
    expect(Redact.value("adminToken", "t")).toBe(Redact.hidden)
    expect(Redact.value("transports.api.headers.authorization", 1)).toBe(Redact.hidden)
    expect(Redact.value("telemetry.headers", "Bearer x")).toBe(Redact.hidden)
  })

  it("hides a non-URL in a URL field unless it is a bare host:port, and walks objects", () => {
    expect(Redact.value("webhook", "whsec_abc")).toBe("(hidden: not a URL)")
    expect(Redact.value("telemetry.otlpEndpoint", "collector:4318")).toBe("collector:4318")
    expect(Redact.value("transports", { a: { url: "smtp://u:p@h", password: "x" } })).toEqual({ a: { url: "smtp://****@h", password: Redact.hidden } })
    expect(Redact.value("senders.alice", "alice@example.com")).toBe("alice@example.com")
  })
})
