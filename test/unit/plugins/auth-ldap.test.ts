import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as Resolve from "../../../src/config/Resolve.ts"
import { filterFor } from "../../../plugins/auth-ldap/Directory.ts"
import { authLdap } from "../../../plugins/auth-ldap/index.ts"

describe("auth-ldap filter", () => {
  it.each([
    ["a wildcard", "al*", "(mail=al\\2a)"],
    ["parentheses", "*)(uid=alice", "(mail=\\2a\\29\\28uid=alice)"],
    ["a backslash", "alice@example.co\\6d", "(mail=alice@example.co\\5c6d)"],
    ["a NUL", "alice\0", "(mail=alice\\00)"],
    ["replacement patterns of String.replace", "$&$'$`", "(mail=$&$'$`)"]
  ])("escapes %s in the user name as RFC 4515 §3 requires", (_, user, filter) => {
    expect(filterFor("(mail=%s)", user)).toBe(filter)
  })

  it("replaces every %s", () => {
    expect(filterFor("(|(uid=%s)(mail=%s))", "a*")).toBe("(|(uid=a\\2a)(mail=a\\2a))")
  })
})

describe("auth-ldap options", () => {
  const base = { url: "ldap://127.0.0.1:389", base: "dc=example,dc=com" }
  // As check-config and start-up report them: one line naming the plugin's position and the option.
  const problem = (input: unknown): Promise<string> =>
    Effect.runPromise(Effect.flip(Resolve.resolve({ plugins: [authLdap(input as never)] }, "test.config.ts"))).then((e) => e.message)

  it("takes the defaults for what is not given", async () => {
    expect(authLdap(base).name).toBe("auth-ldap")
    const config = await Effect.runPromise(Resolve.resolve({ plugins: [authLdap(base)] }, "test.config.ts"))
    expect(config.plugins[0]!.name).toBe("auth-ldap")
  })

  it.each([
    ["a URL with credentials", { ...base, url: "ldap://cn=admin:pw@127.0.0.1" }, /\(auth-ldap\)\.url: expected .*an ldap:\/\/ or ldaps:\/\/ URL/],
    ["a filter without %s", { ...base, filter: "(mail=alice)" }, /\(auth-ldap\)\.filter: expected .*a filter in parentheses containing %s/],
    ["a bindDn without password source", { ...base, bindDn: "cn=smtp,dc=example,dc=com" }, /\(auth-ldap\)\.bindPasswordFile: /],
    ["an unknown option", { ...base, bindPassword: "inline" }, /\(auth-ldap\)\.bindPassword: /],
    ["a pool of 0", { ...base, poolSize: 0 }, /\(auth-ldap\)\.poolSize: /],
    ["a timeout that is no duration", { ...base, timeout: "soon" }, /\(auth-ldap\)\.timeout: /],
    ["a timeout over a minute", { ...base, timeout: "2 minutes" }, /\(auth-ldap\)\.timeout: expected .*a duration of at most 1 minute/],
    ["startTls on ldaps://", { ...base, url: "ldaps://ldap.example.com", startTls: true }, /\(auth-ldap\)\.startTls: /]
  ])("refuses %s, naming the option", async (_, input, message) => {
    const line = await problem(input)
    expect(line).toMatch(/^Invalid config: plugins\[0\] \(auth-ldap\)\./)
    expect(line).toMatch(message)
    expect(line).not.toContain("\n")
  })

  it("never shows the rejected URL's password in the error", async () => {
    expect(await problem({ ...base, url: "ldap://cn=admin:hunter2@127.0.0.1" })).not.toContain("hunter2")
  })
})
