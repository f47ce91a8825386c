/**
 * No open relay (DESIGN.md section 3): strangers get 530 at MAIL, trusted networks and
 * authenticated users may relay, and a bridge with no trust and no users refuses everyone.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const plainToken = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString("base64")

const usersFile = async (): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-relay-"))
  const file = path.join(dir, "users.htpasswd")
  fs.writeFileSync(file, `alice@example.com:${await hashPassword("secret", 4)}\n`)
  return file
}

const ehlo = async (c: Client): Promise<void> => {
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
}

describe("relay with users and no trusted network", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    bridge = await startBridge({ tls: { cert, key }, users: await usersFile() })
  })
  afterAll(() => bridge.stop())

  it("refuses MAIL from an unauthenticated stranger with 530 5.7.0, and RCPT stays out of sequence (503)", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      expect(await c.command("MAIL FROM:<spammer@example.org>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command("RCPT TO:<victim@example.net>")).toMatch(/^503 5\.5\.1 /)
    } finally {
      c.close()
    }
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("refuses the stranger over TLS too: encryption alone is not authentication (530 5.7.0)", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      expect(await c.command("STARTTLS")).toMatch(/^220 /)
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<spammer@example.org>")).toBe("530 5.7.0 Authentication required")
    } finally {
      c.close()
    }
  })

  it("refuses swaks without AUTH (530 5.7.0) and delivers nothing", async () => {
    const r = await run("swaks", ["--server", `127.0.0.1:${bridge.port}`, "--from", "spammer@example.org", "--to", "victim@example.net"])
    expect(r.stdout).toMatch(/<\*\* +530 5\.7\.0 /)
    expect(r.code).not.toBe(0)
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("lets an authenticated user relay to any domain: 250 at MAIL, RCPT and end of data", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      await c.command("STARTTLS")
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${plainToken("alice@example.com", "secret")}`)).toBe("235 2.7.0 Authentication successful")
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<someone@far-away.example>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: relayed\r\n\r\nhello\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: relayed"))
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe("Subject: relayed\r\n\r\nhello\r\n")
  })
})

describe("relay from a trusted network (trust: 127.0.0.0/8)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge.stop())

  it("accepts MAIL, RCPT and DATA without AUTH (250) and delivers", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      expect(await c.command("MAIL FROM:<app@internal.example>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<customer@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: trusted\r\n\r\nfrom the app server\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: trusted"))
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe("Subject: trusted\r\n\r\nfrom the app server\r\n")
  })

  it("delivers from swaks without AUTH", async () => {
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--from", "app@internal.example", "--to", "customer@example.net",
      "--header", "Subject: trusted swaks"
    ])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: trusted swaks"))).toHaveLength(1)
  })
})

describe("relay when a different network is trusted (trust: 192.0.2.0/24)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["192.0.2.0/24"] })
  })
  afterAll(() => bridge.stop())

  it("refuses loopback, which is not in the list, with 530 5.7.0", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      expect(await c.command("MAIL FROM:<app@internal.example>")).toBe("530 5.7.0 Authentication required")
    } finally {
      c.close()
    }
  })
})

describe("relay with no configuration at all (no trust, no users)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({})
  })
  afterAll(() => bridge.stop())

  it("is no open relay: EHLO offers no AUTH, MAIL gets 530 5.7.0, AUTH gets 502, nothing is delivered", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      const reply = await c.command("EHLO client.test")
      expect(reply).not.toMatch(/AUTH/)
      expect(await c.command("MAIL FROM:<anyone@example.org>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command("MAIL FROM:<>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command(`AUTH PLAIN ${plainToken("alice@example.com", "secret")}`)).toMatch(/^502 5\.5\.1 /)
      expect(await c.command("RCPT TO:<postmaster@example.net>")).toMatch(/^503 5\.5\.1 /)
    } finally {
      c.close()
    }
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("refuses swaks and delivers nothing", async () => {
    const r = await run("swaks", ["--server", `127.0.0.1:${bridge.port}`, "--from", "a@example.org", "--to", "b@example.net"])
    expect(r.stdout).toMatch(/<\*\* +530 5\.7\.0 /)
    expect(bridge.delivered()).toHaveLength(0)
  })
})

describe("relay refusals count as invalid commands (maxInvalidCommands: 3)", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ limits: { maxInvalidCommands: 3 } })
  })
  afterAll(() => bridge.stop())

  it("answers the fourth MAIL refused with 530 5.7.0 by 421 4.7.0 and closes", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      for (let i = 0; i < 3; i++) expect(await c.command(`MAIL FROM:<probe${i}@example.org>`)).toBe("530 5.7.0 Authentication required")
      expect(await c.command("MAIL FROM:<probe3@example.org>")).toBe("421 4.7.0 Too many errors, closing connection")
      await c.closed(3_000)
    } finally {
      c.close()
    }
  })

  it("counts 530 refusals and other errors together", async () => {
    const c = await connect(bridge.port)
    try {
      await ehlo(c)
      expect(await c.command("MAIL FROM:<a@example.org>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command("XYZZY")).toBe("500 5.5.2 Command unrecognized")
      expect(await c.command("MAIL FROM:<b@example.org>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command("RCPT TO:<c@example.net>")).toBe("421 4.7.0 Too many errors, closing connection")
      await c.closed(3_000)
    } finally {
      c.close()
    }
  })
})
