import { describe, expect, it } from "vitest"
import * as Protocol from "../../../plugins/policy/Protocol.ts"
import { parseServer } from "../../../plugins/policy/options.ts"

describe("policy delegation: the request", () => {
  it("writes name=value lines and an empty line", () => {
    expect(Protocol.encode([["request", "smtpd_access_policy"], ["sender", "a@b"]])).toBe("request=smtpd_access_policy\nsender=a@b\n\n")
  })

  it("turns a line feed, CR or NUL in a value into ?, so a client cannot add an attribute of its choice", () => {
    const text = Protocol.encode([["helo_name", "x\nrecipient=victim@example.com\r\0"]])
    expect(text).toBe("helo_name=x?recipient=victim@example.com??\n\n")
    expect(text.split("\n")).toHaveLength(3)
  })
})

describe("policy delegation: the answer", () => {
  it("finds the end of an answer only at its empty line", () => {
    expect(Protocol.answerEnd("action=DUNNO\n")).toBe(-1)
    expect(Protocol.answerEnd("action=DUNNO\n\n")).toBe(14)
    expect(Protocol.actionOf("foo=bar\naction=OK\n\n")).toBe("OK")
    expect(Protocol.actionOf("foo=bar\n\n")).toBeUndefined()
  })

  it("maps actions as Postfix's access(5) does", () => {
    expect(Protocol.action("DUNNO")).toEqual({ _tag: "Continue" })
    expect(Protocol.action("ok")).toEqual({ _tag: "Accept" })
    expect(Protocol.action("123")).toEqual({ _tag: "Accept" })
    expect(Protocol.action("REJECT")).toEqual({ _tag: "Refuse", code: 554, enhanced: "5.7.1", text: "Access denied" })
    expect(Protocol.action("REJECT 5.1.1 unknown")).toEqual({ _tag: "Refuse", code: 554, enhanced: "5.1.1", text: "unknown" })
    expect(Protocol.action("DEFER_IF_PERMIT Greylisted")).toEqual({ _tag: "Refuse", code: 450, enhanced: "4.7.1", text: "Greylisted" })
    expect(Protocol.action("DEFER 4.2.0 later")).toEqual({ _tag: "Refuse", code: 450, enhanced: "4.2.0", text: "later" })
    expect(Protocol.action("421 4.3.2 bye")).toEqual({ _tag: "Refuse", code: 421, enhanced: "4.3.2", text: "bye" })
    // An enhanced code of another class than the reply's is not used.
    expect(Protocol.action("550 4.2.0 mixed")).toEqual({ _tag: "Refuse", code: 550, enhanced: "5.7.1", text: "4.2.0 mixed" })
    expect(Protocol.action("PREPEND X-Greylist: delayed 1 seconds")).toEqual({ _tag: "Prepend", name: "X-Greylist", value: "delayed 1 seconds" })
    expect(Protocol.action("DEFER_IF_REJECT maybe")._tag).toBe("Continue")
    expect(Protocol.action("HOLD")).toEqual({ _tag: "Unsupported", action: "HOLD" })
    expect(Protocol.action("FILTER smtp:[127.0.0.1]:10025")._tag).toBe("Unsupported")
  })

  it("keeps the text printable and short: a CR or NUL becomes ?, a long text is cut", () => {
    expect(Protocol.action("REJECT a\rb\0c")).toMatchObject({ text: "a?b?c" })
    const long = Protocol.action(`REJECT ${"x".repeat(1000)}`)
    expect(long._tag === "Refuse" && long.text.length).toBe(203)
  })

  it("refuses a PREPEND whose name is not a field name or whose value holds a CR", () => {
    expect(Protocol.action("PREPEND Bad Name: x")._tag).toBe("Unsupported")
    expect(Protocol.action("PREPEND X-Ok: a\rBcc: victim@example.com")._tag).toBe("Unsupported")
  })
})

describe("policy delegation: the server option", () => {
  it("takes inet:HOST:PORT and unix:/path, as Postfix names a policy service", () => {
    expect(parseServer("inet:127.0.0.1:10023")).toEqual({ host: "127.0.0.1", port: 10023 })
    expect(parseServer("inet:[::1]:10023")).toEqual({ host: "::1", port: 10023 })
    expect(parseServer("unix:/run/policy.sock")).toEqual({ path: "/run/policy.sock" })
    expect(parseServer("127.0.0.1:10023")).toBeUndefined()
    expect(parseServer("unix:relative")).toBeUndefined()
    expect(parseServer("inet:127.0.0.1:99999")).toBeUndefined()
  })
})
