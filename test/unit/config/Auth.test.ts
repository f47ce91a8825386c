import { Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import * as Auth from "../../../src/config/Auth.ts"
import * as Resolve from "../../../src/config/Resolve.ts"

const resolveAuth = (auth: ReadonlyArray<unknown>) =>
  Effect.runPromise(Effect.either(Resolve.resolve({ auth, allowInsecureAuth: true }, "test.config.ts")))

describe("auth backend URLs", () => {
  it.each([
    ["dovecot:///run/dovecot/auth-client", { type: "dovecot", path: "/run/dovecot/auth-client" }],
    ["dovecot:///var/run/with%20space", { type: "dovecot", path: "/var/run/with space" }],
    ["dovecot://127.0.0.1:12345", { type: "dovecot", host: "127.0.0.1", port: 12345 }],
    ["dovecot://[::1]:12345", { type: "dovecot", host: "::1", port: 12345 }],
    ["ldap://127.0.0.1:389/dc=example,dc=com?uid", { type: "ldap", url: "ldap://127.0.0.1:389", base: "dc=example,dc=com", filter: "(uid=%s)" }],
    ["LDAPS://ldap.example.com/ou=people%2Cdc=example,dc=com?mail?one?(objectClass=person)", {
      type: "ldap", url: "ldaps://ldap.example.com", base: "ou=people,dc=example,dc=com", filter: "(&(objectClass=person)(mail=%s))", scope: "one"
    }],
    ["https://auth.example.com/check", { type: "http", url: "https://auth.example.com/check" }]
  ])("reads %s", (url, entry) => {
    expect(Auth.fromUrl(url)).toEqual(Either.right(entry))
  })

  it.each([
    "ldap://admin:secret@127.0.0.1/dc=x",
    "ldap://127.0.0.1/dc=x?uid?base",
    "ldap://127.0.0.1/dc=x?u(id",
    "ldap://127.0.0.1/dc=x?uid?sub?objectClass=person",
    "ldap://127.0.0.1/dc=x?uid?sub??bindname=cn=admin",
    "dovecot://user:pw@127.0.0.1:1",
    "dovecot://127.0.0.1",
    "dovecot:///",
    "smtp://127.0.0.1:25"
  ])("refuses %s", (url) => {
    expect(Either.isLeft(Auth.fromUrl(url))).toBe(true)
  })

  it("completes the file's entry of the same type with each --auth flag, keeping its bind options and replacing its base", () => {
    const file = [{ type: "ldap", base: "dc=old", bindDn: "cn=smtp", bindPasswordFile: "/pw" }, { type: "http", url: "http://a/", secret: "0123456789abcdef" }]
    expect(Auth.mergeFlags(file, ["ldap://h/dc=new?uid", "https://b/", "dovecot:///s"])).toEqual([
      { type: "ldap", bindDn: "cn=smtp", bindPasswordFile: "/pw", url: "ldap://h/dc=new?uid" },
      { type: "http", url: "https://b/", secret: "0123456789abcdef" },
      "dovecot:///s"
    ])
  })

  it("names the field of a bad option inside an entry, and never shows a secret", async () => {
    const result = await resolveAuth([{ type: "http", url: "http://127.0.0.1/", secret: "short-key" }])
    expect(Either.isLeft(result) && result.left.message).toBe(
      "Invalid config: auth[0].secret: expected a string at least 16 character(s) long, got \"(hidden)\" (test.config.ts)"
    )
    const unknown = await resolveAuth(["ldap://127.0.0.1/dc=x?uid", { type: "radius", host: "x" }])
    expect(Either.isLeft(unknown) && unknown.left.message).toMatch(/^Invalid config: auth\[1\]\.type: expected .*one of htpasswd, ldap, http, dovecot, oauth.*got "radius"/)
  })
})
