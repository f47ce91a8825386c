/**
 * auth-ldap against a real slapd (started by the test with a small directory), through real
 * SMTP AUTH PLAIN and LOGIN sessions with the test SmtpClient.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { authLdap } from "../../plugins/auth-ldap/index.ts"
import type { OptionsInput } from "../../plugins/auth-ldap/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { freePort } from "../support/runtimes.ts"
import { type Slapd, slapdAvailable, startSlapd } from "../support/slapd.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

// Wrong passwords are sent on purpose, many from one address: the AUTH throttle is set wide here
// (its own test below runs with the defaults).
const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

const session = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/AUTH PLAIN LOGIN/)
  return c
}

/** C: AUTH PLAIN <token>; the reply. */
const authPlain = async (port: number, user: string, password: string) => {
  const c = await session(port)
  const reply = await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
  return { c, reply }
}

/** C: AUTH LOGIN, user, password; the last reply. */
const authLogin = async (port: number, user: string, password: string) => {
  const c = await session(port)
  expect(await c.command("AUTH LOGIN")).toBe("334 VXNlcm5hbWU6")
  expect(await c.command(b64(user))).toBe("334 UGFzc3dvcmQ6")
  const reply = await c.command(b64(password))
  return { c, reply }
}

const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-ldap-secret-"))
const passwordFile = (password: string): string => {
  const file = path.join(secretDir, `pw-${Math.random().toString(36).slice(2)}`)
  fs.writeFileSync(file, `${password}\n`)
  return file
}

describe.skipIf(!needTool("slapd", slapdAvailable()))("auth-ldap against slapd", () => {
  let slapd: Slapd
  let bridge: TestBridge
  const options = (extra: Partial<OptionsInput> = {}): OptionsInput => ({
    url: `ldap://127.0.0.1:${slapd.port}`,
    base: `ou=people,${slapd.base}`,
    filter: "(&(objectClass=inetOrgPerson)(mail=%s))",
    bindDn: slapd.serviceDn,
    bindPasswordFile: passwordFile(slapd.servicePassword),
    senderAttributes: ["mail", "mailAlternateAddress"],
    ...extra
  })

  beforeAll(async () => {
    slapd = await startSlapd([
      { uid: "alice", password: "alice-pw", mail: ["alice@example.com"], mailAlternateAddress: ["alias@example.org"] },
      { uid: "bob", password: "bob-pw", mail: ["bob@example.com"] },
      { uid: "twin1", password: "twin-pw", mail: ["twin@example.com"] },
      { uid: "twin2", password: "twin-pw", mail: ["twin@example.com"] }
    ])
    bridge = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap(options())] })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await slapd?.stop()
  })

  it.each([["PLAIN", authPlain], ["LOGIN", authLogin]] as const)("accepts the right password with AUTH %s: 235 2.7.0", async (_, auth) => {
    const { c, reply } = await auth(bridge.port, "alice@example.com", "alice-pw")
    expect(reply).toMatch(/^235 2\.7\.0 /)
    c.close()
  })

  it.each([["PLAIN", authPlain], ["LOGIN", authLogin]] as const)("refuses a wrong password with AUTH %s: 535 5.7.8", async (_, auth) => {
    const { c, reply } = await auth(bridge.port, "alice@example.com", "wrong")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("refuses a user the directory does not know with 535 5.7.8", async () => {
    const { c, reply } = await authPlain(bridge.port, "nobody@example.com", "alice-pw")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("refuses an empty password with 535 5.7.8 without binding (the server would take it as an unauthenticated bind)", async () => {
    const aliceBinds = () => slapd.binds().filter((l) => l.includes('dn="uid=alice,')).length
    const before = aliceBinds()
    // AUTH PLAIN with an empty password is refused by the SASL decoder already; LOGIN reaches the backend.
    const { c, reply } = await authLogin(bridge.port, "alice@example.com", "")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
    // A bind with the right password does reach the server (the log is read correctly).
    const ok = await authPlain(bridge.port, "alice@example.com", "alice-pw")
    expect(ok.reply).toMatch(/^235 /)
    ok.c.close()
    expect(aliceBinds()).toBe(before + 1)
  })

  it("refuses a filter matching two entries with 535 5.7.8, even with their password", async () => {
    const { c, reply } = await authPlain(bridge.port, "twin@example.com", "twin-pw")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  // Each of these finds alice's entry when the user name is put into the filter unescaped.
  it.each([
    ["a wildcard", "alice@*"],
    ["a closing parenthesis and a new term", "*)(uid=alice"],
    ["a backslash escape", "alice@example.co\\6d"]
  ])("refuses filter injection with %s in the user name: 535 5.7.8 with the right password", async (_, user) => {
    // (A NUL never gets this far: the SASL decoder refuses it, 501; the escaping of NUL is a unit test.)
    const { c, reply } = await authLogin(bridge.port, user, "alice-pw")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("refuses a 2000-character user name with 535 5.7.8", async () => {
    const { c, reply } = await authLogin(bridge.port, `${"a".repeat(2000)}@example.com`, "alice-pw")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("serves 20 parallel logins through a pool of 4 connections: all 235", async () => {
    const logins = await Promise.all(Array.from({ length: 20 }, () => authPlain(bridge.port, "alice@example.com", "alice-pw")))
    logins.forEach(({ c }) => c.close())
    expect(logins.map((l) => l.reply.slice(0, 3))).toEqual(Array(20).fill("235"))
  })

  it("lets a user send as their mailAlternateAddress (MAIL FROM and header From), not as another's address: 553 5.7.1", async () => {
    const { c, reply } = await authPlain(bridge.port, "alice@example.com", "alice-pw")
    expect(reply).toMatch(/^235 /)
    expect(await c.command("MAIL FROM:<bob@example.com>")).toMatch(/^553 5\.7\.1 /)
    expect(await c.command("MAIL FROM:<alias@example.org>")).toMatch(/^250 /)
    expect(await c.command("RCPT TO:<carol@example.net>")).toMatch(/^250 /)
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command("From: <bob@example.com>\r\nSubject: forged\r\n\r\nhi\r\n.")).toMatch(/^550 5\.7\.1 Header From rejected/)
    expect(await c.command("MAIL FROM:<alias@example.org>")).toMatch(/^250 /)
    expect(await c.command("RCPT TO:<carol@example.net>")).toMatch(/^250 /)
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command("From: <alias@example.org>\r\nSubject: alias\r\n\r\nhi\r\n.")).toMatch(/^250 /)
    c.close()
  })

  it("answers 454 4.7.0 when the service account's password is wrong, and never logs that password", async () => {
    const wrong = "not-the-service-pw-3141"
    const other = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap(options({ bindPasswordFile: passwordFile(wrong) }))] })
    try {
      const { c, reply } = await authPlain(other.port, "alice@example.com", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(JSON.stringify(other.logs())).toContain("auth-ldap: directory unavailable (Server): ")
      expect(JSON.stringify(other.logs())).not.toContain(wrong)
      expect(JSON.stringify(other.logs())).not.toContain("alice-pw")
    } finally {
      await other.stop()
    }
  })

  it("searches anonymously without bindDn", async () => {
    const other = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap({ ...options(), bindDn: undefined, bindPasswordFile: undefined })] })
    try {
      const { c, reply } = await authPlain(other.port, "bob@example.com", "bob-pw")
      expect(reply).toMatch(/^235 /)
      c.close()
    } finally {
      await other.stop()
    }
  })

  it.each([
    ["STARTTLS", (s: Slapd) => ({ url: `ldap://localhost:${s.port}`, startTls: true, caFile: s.caFile })],
    ["ldaps://", (s: Slapd) => ({ url: `ldaps://localhost:${s.ldapsPort}`, caFile: s.caFile })]
  ] as const)("authenticates over %s with the CA file: 235", async (_, tls) => {
    const other = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap(options(tls(slapd)))] })
    try {
      const { c, reply } = await authPlain(other.port, "alice@example.com", "alice-pw")
      expect(reply).toMatch(/^235 /)
      c.close()
    } finally {
      await other.stop()
    }
  })

  it("answers 454 4.7.0 over TLS when the server's certificate is not signed by the CA file", async () => {
    const other = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap(options({ url: `ldaps://localhost:${slapd.ldapsPort}` }))] })
    try {
      const { c, reply } = await authPlain(other.port, "alice@example.com", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
    } finally {
      await other.stop()
    }
  })

  it("answers 454 4.7.0 when no server listens", async () => {
    const port = await freePort()
    const other = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authLdap(options({ url: `ldap://127.0.0.1:${port}` }))] })
    try {
      const { c, reply } = await authPlain(other.port, "alice@example.com", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(JSON.stringify(other.logs())).toContain("auth-ldap: directory unavailable (Unreachable): ")
    } finally {
      await other.stop()
    }
  })

  it("answers 454 4.7.0 after the timeout when the server accepts and never answers, and other sessions go on meanwhile", async () => {
    const silent = net.createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const port = (silent.address() as net.AddressInfo).port
    const other = await startBridge({
      allowInsecureAuth: true,
      rateLimit: wideThrottle,
      plugins: [authLdap(options({ url: `ldap://127.0.0.1:${port}`, timeout: "1500 millis", poolSize: 1 }))]
    })
    try {
      const started = Date.now()
      const waiting = [authPlain(other.port, "alice@example.com", "alice-pw"), authPlain(other.port, "bob@example.com", "bob-pw")]
      // Meanwhile the bridge serves others at once.
      const bystander = await session(other.port)
      expect(await bystander.command("NOOP", 1000)).toMatch(/^250 /)
      bystander.close()
      for (const { c, reply } of await Promise.all(waiting)) {
        expect(reply).toMatch(/^454 4\.7\.0 /)
        c.close()
      }
      expect(Date.now() - started).toBeLessThan(5000)
      expect(JSON.stringify(other.logs())).toContain("auth-ldap: directory unavailable (Timeout): no answer within 1s 500ms")
    } finally {
      await other.stop()
      silent.close()
    }
  })

  it("puts the AUTH throttle in front of it without any rate-limit configuration: parallel guesses get 454 4.7.0", async () => {
    const other = await startBridge({ allowInsecureAuth: true, plugins: [authLdap(options())] })
    try {
      // The default allows 5 attempts per user and network; the 6th is refused unchecked.
      const guesses = await Promise.all(Array.from({ length: 6 }, (_, i) => authPlain(other.port, "alice@example.com", `guess-${i}`)))
      const replies = guesses.map((g) => g.reply)
      guesses.forEach((g) => g.c.close())
      expect(replies.filter((r) => /^535 5\.7\.8 /.test(r))).toHaveLength(5)
      expect(replies.filter((r) => /^454 4\.7\.0 Too many authentication failures/.test(r))).toHaveLength(1)
    } finally {
      await other.stop()
    }
  }, 30_000)
})

describe.skipIf(!needTool("slapd", slapdAvailable()))("auth-ldap when the server closes idle connections", () => {
  let slapd: Slapd
  beforeAll(async () => {
    slapd = await startSlapd([{ uid: "alice", password: "alice-pw", mail: ["alice@example.com"] }], { idleTimeout: 1 })
  }, 30_000)
  afterAll(() => slapd?.stop())

  it("opens a new STARTTLS connection for the next AUTH (235), and never binds over a plain reconnection", async () => {
    const bridge = await startBridge({
      allowInsecureAuth: true,
      rateLimit: wideThrottle,
      plugins: [authLdap({
        url: `ldap://localhost:${slapd.port}`,
        startTls: true,
        caFile: slapd.caFile,
        base: slapd.base,
        bindDn: slapd.serviceDn,
        bindPasswordFile: passwordFile(slapd.servicePassword),
        poolSize: 1
      })]
    })
    try {
      for (let round = 0; round < 2; round++) {
        const { c, reply } = await authPlain(bridge.port, "alice@example.com", "alice-pw")
        expect(reply).toMatch(/^235 /)
        c.close()
        // slapd checks idle connections every idletimeout/2 seconds: 2.5 s covers both.
        await new Promise((resolve) => setTimeout(resolve, 2500))
      }
      const binds = slapd.boundWith()
      expect(binds.filter((l) => l.includes('dn="uid=alice,'))).toHaveLength(2)
      expect(binds.filter((l) => / ssf=0\b/.test(l))).toEqual([])
    } finally {
      await bridge.stop()
    }
  }, 20_000)
})
