import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Url from "../../../../src/transport/smtp/Url.ts"

const ok = (url: string) => Either.getOrThrow(Url.parse(url))
const error = (url: string) => {
  const parsed = Url.parse(url)
  if (Either.isRight(parsed)) throw new Error(`${url} parsed`)
  return parsed.left
}

describe("relay URLs", () => {
  it("reads smtp://host:port as SMTP with opportunistic STARTTLS and verification on", () => {
    expect(ok("smtp://relay.example:2525")).toEqual({
      protocol: "smtp",
      endpoint: { host: "relay.example", port: 2525 },
      tls: "opportunistic",
      verify: true,
      verifyRecipients: false,
      servername: undefined,
      caFile: undefined,
      credentials: undefined
    })
  })

  it("defaults the ports: smtp 25, smtps 465, lmtp 24", () => {
    expect(ok("smtp://relay.example").endpoint).toEqual({ host: "relay.example", port: 25 })
    expect(ok("smtps://relay.example").endpoint).toEqual({ host: "relay.example", port: 465 })
    expect(ok("lmtp://127.0.0.1").endpoint).toEqual({ host: "127.0.0.1", port: 24 })
  })

  it("makes smtps:// implicit TLS and lmtp:// plain unless tls= says otherwise", () => {
    expect(ok("smtps://relay.example").tls).toBe("implicit")
    expect(ok("lmtp://127.0.0.1:24").tls).toBe("none")
    expect(ok("lmtp://127.0.0.1:24?tls=required").tls).toBe("required")
  })

  it("percent-decodes user and password", () => {
    expect(ok("smtp://me%40example.org:p%3As%40ss%2F@relay.example:587").credentials).toEqual({
      user: "me@example.org",
      password: "p:s@ss/"
    })
  })

  it("reads tls, verify, servername and ca from the query", () => {
    const target = ok("smtp://10.0.0.5:587?tls=required&verify=false&servername=mx.example&ca=/etc/ca.pem")
    expect(target).toMatchObject({ tls: "required", verify: false, servername: "mx.example", caFile: "/etc/ca.pem" })
  })

  it("takes verify=rcpt as recipient verification with the certificate still verified", () => {
    expect(ok("smtp://10.0.0.5:25?verify=rcpt")).toMatchObject({ verify: true, verifyRecipients: true })
    expect(ok("lmtp:///run/dovecot/lmtp?verify=rcpt")).toMatchObject({ verifyRecipients: true })
    expect(ok("smtp://10.0.0.5:25")).toMatchObject({ verifyRecipients: false })
  })

  it("accepts an IPv6 literal in brackets", () => {
    expect(ok("smtp://[::1]:2525").endpoint).toEqual({ host: "::1", port: 2525 })
  })

  it("takes lmtp:///path as a unix socket", () => {
    expect(ok("lmtp:///run/dovecot/lmtp")).toMatchObject({ protocol: "lmtp", endpoint: { path: "/run/dovecot/lmtp" }, tls: "none" })
  })

  it("names the bad part: scheme, host, port, query, credentials", () => {
    expect(error("http://relay.example").reason).toBe("Scheme")
    expect(error("smtp://:25").reason).toBe("Host")
    expect(error("smtp:///socket").reason).toBe("Host")
    expect(error("smtp://relay.example:99999").reason).toBe("Port")
    expect(error("smtp://relay.example:25?tls=maybe").message).toContain("the tls parameter must be required, opportunistic or none, not \"maybe\"")
    expect(error("smtp://relay.example:25?tsl=none").message).toContain("unknown option \"tsl\"")
    expect(error("smtps://relay.example?tls=none").reason).toBe("Query")
    expect(error("smtp://:secret@relay.example").reason).toBe("Credentials")
  })

  it("never repeats the password in an error", () => {
    const e = error("smtp://bob:hunter2@relay.example:0")
    expect(e.message).not.toContain("hunter2")
    expect(e.message).toContain("smtp://****@relay.example:0")
    expect(e.message).not.toContain("bob")
  })

  it("refuses a password with an unencoded /, ? or # as Credentials, naming no part of it", () => {
    for (const password of ["Pw/Secret", "Pw?Secret", "Pw#Secret"]) {
      const e = error(`smtp://bob:${password}@relay.example:587`)
      expect(e.reason).toBe("Credentials")
      expect(e.message).not.toMatch(/Secret|bob/)
    }
  })

  it("describes a target without credentials", () => {
    expect(Url.describe(ok("smtp://bob:pw@relay.example:587"))).toBe("smtp://relay.example:587")
    expect(Url.describe(ok("smtps://[::1]"))).toBe("smtps://[::1]:465")
  })
})
