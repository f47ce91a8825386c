/** auth-dovecot's pure protocol part: Dovecot's tab-escaping, the lines it sends and takes, the bounded line reader, the options. */
import { Effect, Schema } from "effect"
import { decodeOptions } from "../../../src/index.ts"
import { describe, expect, it } from "vitest"
import { Options } from "../../../plugins/auth-dovecot/options.ts"
import * as Protocol from "../../../plugins/auth-dovecot/Protocol.ts"

const client: Protocol.Client = {
  service: "smtp", session: "S1", localAddress: "192.0.2.1", localPort: 587, remoteAddress: "198.51.100.7", remotePort: 40000,
  secured: true, noPenalty: false
}

describe("Dovecot's tab-escaping", () => {
  it("escapes NUL, ^A, TAB, CR and LF, and reads them back", () => {
    const value = "a\x00b\x01c\td\re\nf"
    expect(Protocol.escape(value)).toBe("a\x010b\x011c\x01td\x01re\x01nf")
    expect(Protocol.unescape(Protocol.escape(value))).toBe(value)
  })
})

describe("the lines", () => {
  it("AUTH carries the client's addresses, secured, nologin and the initial response", () => {
    expect(Protocol.auth(7, "SCRAM-SHA-256", client, "biws")).toBe(
      "AUTH\t7\tSCRAM-SHA-256\tservice=smtp\tsession=S1\tlip=192.0.2.1\trip=198.51.100.7\tlport=587\trport=40000\tsecured\tnologin\tresp=biws\n"
    )
  })

  it("AUTH says nothing of `secured` without TLS, sends `resp=` for an empty initial response, and none without one", () => {
    const line = Protocol.auth(1, "PLAIN", { ...client, secured: false, noPenalty: true }, "")
    expect(line.split("\t")).not.toContain("secured")
    expect(line).toContain("\tno-penalty\t")
    expect(line.endsWith("\tresp=\n")).toBe(true)
    expect(Protocol.auth(1, "PLAIN", client, undefined)).not.toContain("resp=")
  })

  it("reads CONT, OK with an escaped user, FAIL with temp (2.3) or code=temp_fail (2.4)", () => {
    expect(Protocol.parseAnswer("CONT\t3\tYWJj")).toEqual({ _tag: "Cont", id: 3, data: "YWJj" })
    expect(Protocol.parseAnswer("OK\t3\tuser=a\x01tb")).toEqual({ _tag: "Ok", id: 3, user: "a\tb" })
    expect(Protocol.parseAnswer("FAIL\t3\tuser=bob\ttemp")).toMatchObject({ _tag: "Fail", temporary: true, user: "bob" })
    expect(Protocol.parseAnswer("FAIL\t3\tcode=temp_fail")).toMatchObject({ temporary: true })
    expect(Protocol.parseAnswer("FAIL\t3\treason=nope")).toMatchObject({ temporary: false, reason: "nope" })
  })

  it("reads no answer from a line without a valid id or of an unknown command", () => {
    for (const line of ["OK\t0", "OK\t-1", "OK\tx", "OK\t99999999999", "OK", "HELLO\t1", "CONT\t01\tx"]) expect(Protocol.parseAnswer(line)).toBeUndefined()
  })

  it("reads the handshake: version, mechanisms with their flags, DONE", () => {
    expect(Protocol.parseHandshake("VERSION\t1\t2")).toEqual({ _tag: "Version", major: 1 })
    expect(Protocol.parseHandshake("MECH\tPLAIN\tplaintext")).toMatchObject({ _tag: "Mech", mech: { name: "PLAIN", flags: new Set(["plaintext"]) } })
    expect(Protocol.parseHandshake("DONE")).toEqual({ _tag: "Done" })
    expect(Protocol.parseHandshake("COOKIE\tabc")).toEqual({ _tag: "Other" })
  })
})

describe("the line reader", () => {
  const bytes = (s: string) => new TextEncoder().encode(s)

  it("gives whole lines across chunks", () => {
    const reader = new Protocol.LineReader(100)
    expect(reader.push(bytes("OK\t1\tus"))).toEqual([])
    expect(reader.push(bytes("er=a\nCONT\t2\t"))).toEqual(["OK\t1\tuser=a"])
    expect(reader.push(bytes("eA==\n"))).toEqual(["CONT\t2\teA=="])
  })

  it("says too-long once a line, ended or not, passes the bound", () => {
    expect(new Protocol.LineReader(10).push(bytes("x".repeat(11)))).toBe("too-long")
    expect(new Protocol.LineReader(10).push(bytes(`${"x".repeat(11)}\n`))).toBe("too-long")
  })
})

describe("options", () => {
  const decode = Schema.decodeUnknownEither(Options)

  it("takes a socket path, or host and port", () => {
    expect(decode({ path: "/run/dovecot/auth-client" })._tag).toBe("Right")
    expect(decode({ host: "127.0.0.1", port: 12345 })._tag).toBe("Right")
  })

  it("refuses both, neither, a timeout over a minute, a bad mechanism name", () => {
    expect(decode({ path: "/x", host: "h", port: 1 })._tag).toBe("Left")
    expect(decode({})._tag).toBe("Left")
    expect(decode({ path: "/x", timeout: "2 minutes" })._tag).toBe("Left")
    expect(decode({ path: "/x", mechanisms: ["scram sha"] })._tag).toBe("Left")
  })

  it("names the option and what it expects, as check-config shows it", () => {
    const error = Effect.runSync(Effect.flip(decodeOptions("auth-dovecot", Options, { path: "/x", timeout: "2 minutes" })))
    expect(error.message).toBe('auth-dovecot: timeout: expected a duration above zero and at most 60 seconds, like "10 seconds", got "2 minutes"')
  })
})
