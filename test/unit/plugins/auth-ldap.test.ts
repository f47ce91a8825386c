import { describe, expect, it } from "vitest"
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

  it("takes the defaults for what is not given", () => {
    expect(authLdap(base).name).toBe("auth-ldap")
  })

  it.each([
    ["a URL with credentials", { ...base, url: "ldap://cn=admin:pw@127.0.0.1" }, /option "url"/],
    ["a filter without %s", { ...base, filter: "(mail=alice)" }, /option "filter"/],
    ["a bindDn without password source", { ...base, bindDn: "cn=smtp,dc=example,dc=com" }, /option "bindPasswordFile"/],
    ["an unknown option", { ...base, bindPassword: "inline" }, /option "bindPassword"/],
    ["a pool of 0", { ...base, poolSize: 0 }, /option "poolSize"/],
    ["a timeout that is no duration", { ...base, timeout: "soon" }, /option "timeout"/],
    ["startTls on ldaps://", { ...base, url: "ldaps://ldap.example.com", startTls: true }, /option "startTls"/]
  ])("refuses %s, naming the option", (_, input, message) => {
    expect(() => authLdap(input as never)).toThrow(message)
  })

  it("names each option in error once, with the message of its own rule", () => {
    let message = ""
    try {
      authLdap({ ...base, base: "", filter: "(uid=alice)" })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toBe(
      'auth-ldap: invalid options: option "base": Expected a string at least 1 character(s) long, actual ""; ' +
        'option "filter": a filter in parentheses containing %s, e.g. (mail=%s)'
    )
  })

  it("never shows the rejected URL's password in the error", () => {
    expect(() => authLdap({ ...base, url: "ldap://cn=admin:hunter2@127.0.0.1" })).not.toThrow(/hunter2/)
  })
})
