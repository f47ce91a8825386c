// The test support library itself, against real peers: Postfix's smtp-sink, swaks, openssl and a
// tiny in-test STARTTLS responder. If these fail, every other e2e test is suspect.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as net from "node:net"
import * as tls from "node:tls"
import { testCertificate } from "../../support/certs.ts"
import { run } from "../../support/exec.ts"
import { connect } from "../../support/SmtpClient.ts"
import { freePort } from "../../support/runtimes.ts"
import { waitForPort } from "../../support/process.ts"
import { installed, needTool } from "../../support/tools.ts"

describe("support library against smtp-sink", () => {
  let port = 0
  let sinkPid: number | undefined

  beforeAll(async () => {
    port = await freePort()
    const asRoot = process.getuid?.() === 0 ? ["-u", "nobody"] : []
    const sink = spawn("/usr/sbin/smtp-sink", [...asRoot, `127.0.0.1:${port}`, "10"], { stdio: "ignore" })
    sinkPid = sink.pid
    await waitForPort(port)
  })
  afterAll(() => {
    if (sinkPid !== undefined) process.kill(sinkPid, "SIGTERM")
  })

  it("reads a multi-line EHLO reply as one reply", async () => {
    const c = await connect(port)
    try {
      expect(await c.read()).toBe("220 smtp-sink ESMTP")
      const ehlo = await c.command("EHLO client.example")
      expect(ehlo.split("\n")[0]).toBe("250-smtp-sink")
      expect(ehlo).toMatch(/^250-PIPELINING$/m)
      expect(ehlo.split("\n").at(-1)).toMatch(/^250 /)
    } finally {
      c.close()
    }
  })

  it("hands back pipelined replies one at a time and sees the server close", async () => {
    const c = await connect(port)
    await c.read()
    c.send("EHLO a\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nQUIT\r\n")
    expect(await c.read()).toMatch(/^250-/)
    expect(await c.read()).toBe("250 2.1.0 Ok")
    expect(await c.read()).toBe("250 2.1.5 Ok")
    expect(await c.read()).toBe("221 Bye")
    await c.closed()
    expect(c.transcript()).toContain("C: RCPT TO:<b@example.com>")
    await expect(c.read(200)).rejects.toThrow(/closed by the server/)
  })

  it("times out a wait with the transcript so far", async () => {
    const c = await connect(port)
    try {
      await c.read()
      await expect(c.read(200)).rejects.toThrow(/timed out after 200 ms[\s\S]*S: 220 smtp-sink ESMTP/)
    } finally {
      c.close()
    }
  })

  it("runs swaks to completion", async () => {
    const r = await run("swaks", ["--server", `127.0.0.1:${port}`, "--from", "a@example.com", "--to", "b@example.com"])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("<-  250 2.0.0 Ok")
  })
})

describe("run", () => {
  it("feeds stdin and returns the exit code", async () => {
    const r = await run("python3", ["-c", "import sys; s = sys.stdin.read(); print(s.upper()); sys.exit(3)"], { input: "hi" })
    expect(r).toMatchObject({ code: 3, stdout: "HI\n", timedOut: false })
  })

  it("kills a child past its timeout", async () => {
    const r = await run("sleep", ["30"], { timeoutMs: 200 })
    expect(r).toMatchObject({ code: null, signal: "SIGKILL", timedOut: true })
  })
})

describe("testCertificate", () => {
  it("is one self-signed certificate for localhost, 127.0.0.1 and ::1", async () => {
    const cert = testCertificate()
    expect(testCertificate()).toBe(cert)
    const r = await run("openssl", ["x509", "-in", cert.cert, "-noout", "-subject", "-ext", "subjectAltName"])
    expect(r.stdout).toMatch(/CN ?= ?localhost/)
    expect(r.stdout).toContain("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1")
  })
})

describe("startTls", () => {
  // Says 220, then after STARTTLS speaks TLS and answers every line with "250 secure <line>".
  const startTlsResponder = (): Promise<net.Server> => {
    const { certPem, keyPem } = testCertificate()
    const context = tls.createSecureContext({ cert: certPem, key: keyPem })
    const server = net.createServer((plain) => {
      plain.write("220 ready\r\n")
      plain.once("data", () => {
        plain.write("220 2.0.0 go ahead\r\n", () => {
          const secure = new tls.TLSSocket(plain, { isServer: true, secureContext: context })
          secure.setEncoding("utf8").on("data", (text: string) => secure.write(`250 secure ${text.trim()}\r\n`))
          secure.on("error", () => secure.destroy())
        })
      })
    })
    return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)))
  }

  it("upgrades the connection after 220 and keeps reading replies", async () => {
    const server = await startTlsResponder()
    const address = server.address() as net.AddressInfo
    const c = await connect(address.port)
    try {
      expect(await c.read()).toBe("220 ready")
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 go ahead")
      await c.startTls()
      expect(c.encrypted).toBe(true)
      expect(await c.command("EHLO a")).toBe("250 secure EHLO a")
    } finally {
      c.close()
      server.close()
    }
  })
})

describe("needTool", () => {
  const withCi = <A>(value: string | undefined, f: () => A): A => {
    const before = process.env.CI
    if (value === undefined) delete process.env.CI
    else process.env.CI = value
    try {
      return f()
    } finally {
      if (before === undefined) delete process.env.CI
      else process.env.CI = before
    }
  }

  it("skips (false) a missing tool without CI, and fails with the tool's name when CI is set", () => {
    expect(withCi(undefined, () => needTool("frobnicator", installed("/nonexistent/frobnicator")))).toBe(false)
    expect(() => withCi("true", () => needTool("frobnicator", false))).toThrow(
      "frobnicator is missing and CI is set: the tests that need it must run (install it, as .ci/run does)"
    )
    expect(withCi("true", () => needTool("sh", installed("/bin/sh")))).toBe(true)
  })
})
