// The session cap counts `verify`'s DNS lookups as two descriptors a session (each lookup in flight
// has a UDP socket of its own). A sender's SPF record decides how many run at once: the `ptr`
// mechanism looks up the A records of up to ten names the client's PTR records give, all at once
// (RFC 7208 5.5; mailauth's Promise.allSettled). A sender who owns the PTR records of its address
// and an SPF record `v=spf1 ptr -all` makes each session hold ten, not two, for as long as the
// names' server takes to answer (here: never, each lookup waits out its timeout).
//
//   C: MAIL FROM:<a@hostile.test>      hostile.test TXT "v=spf1 ptr -all"
//   C: ... DATA ... .                  1.0.0.127.in-addr.arpa PTR h0.slow.test ... h9.slow.test
//                                      A h0.slow.test ... (no answer)
//   bridge: at most the two a session it counted, in flight at once
import { describe, expect, it } from "@effect/vitest"
import * as Dgram from "node:dgram"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Keys from "../../src/dkim/Keys.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../support/dnsmasq.ts"
import { currentRuntime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { socketsOf } from "../support/descriptors.ts"

const prlimit = fs.existsSync("/usr/bin/prlimit") ? "/usr/bin/prlimit" : undefined
const dnsmasqInstalled = fs.existsSync("/usr/sbin/dnsmasq") || fs.existsSync("/usr/bin/dnsmasq")


const seal = Keys.keygen({ algorithm: "ed25519", domain: "bridge.test", selector: "arc1" })

// verify checks each message; arc-seal authenticates it before sealing (the same lookups), and
// counted none of them before.
const checks: ReadonlyArray<[string, Record<string, unknown>]> = [
  ["verify", { verify: { skipTrusted: false } }],
  ["arcSeal", { arcSeal: { domain: "bridge.test", selector: "arc1", privateKey: seal.privateKeyPem } }]
]

describe.skipIf(prlimit === undefined || !dnsmasqInstalled || process.platform !== "linux")("a check's DNS lookups per session", () => {
  it.each(checks)("%s keeps each session's lookups in flight to the two the session cap counts, whatever the sender's SPF record (ptr: ten names)", async (_, plugin) => {
    // The names' server: takes every question, answers none.
    const silent = Dgram.createSocket("udp4")
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", () => resolve()))
    const names = Array.from({ length: 10 }, (_, i) => `h${i}.slow.test`)
    let dns: Dnsmasq | undefined
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-dns-"))
    const clients: Array<Client> = []
    let cli: Awaited<ReturnType<typeof spawnCli>> | undefined
    try {
      dns = await startDnsmasq({
        zones: ["hostile.test", "example.com"],
        lines: [
          txt("hostile.test", "v=spf1 ptr -all"),
          ...names.map((n) => `ptr-record=1.0.0.127.in-addr.arpa,${n}`),
          `server=/slow.test/127.0.0.1#${silent.address().port}`
        ]
      })
      const config = path.join(dir, "smtp-bridge.config.ts")
      fs.writeFileSync(config, `export default ${JSON.stringify({
        listen: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], maildir: path.join(dir, "Maildir"),
        dns: { servers: [dns.server], timeoutMs: 1500, attempts: 1 },
        ...plugin
      })}\n`)
      cli = await spawnCli(currentRuntime, ["serve", "--config", config, "--log-format", "json"], { prefix: [prlimit!, "--nofile=300:300", "--"] })
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const [warning, each] = await cli.waitForLog(/about (\d+) per session/, 5_000)
      // Three of the session's own (four under Deno), and the check's two.
      expect(Number(each), warning).toBe((currentRuntime === "deno" ? 4 : 3) + 2)

      const sessions = 8
      for (let i = 0; i < sessions; i++) {
        const c = await connect(port, { timeoutMs: 30_000 })
        expect(await c.read()).toMatch(/^220 /)
        expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
        expect(await c.command("MAIL FROM:<a@hostile.test>")).toMatch(/^250 /)
        expect(await c.command("RCPT TO:<b@example.com>")).toMatch(/^250 /)
        expect(await c.command("DATA")).toMatch(/^354 /)
        clients.push(c)
      }
      const idle = socketsOf(cli.pid, ["udp", "udp6"])
      for (const c of clients) c.send("From: a@hostile.test\r\nSubject: ptr\r\n\r\nhello\r\n.\r\n")
      const replies = Promise.all(clients.map((c) => c.read(30_000)))
      // The most UDP sockets held at once while the sessions' lookups wait for the silent server.
      let most = 0
      let done = false
      void replies.finally(() => {
        done = true
      })
      while (!done) {
        most = Math.max(most, socketsOf(cli.pid, ["udp", "udp6"]) - idle)
        await new Promise((r) => setTimeout(r, 25))
      }
      expect((await replies).filter((r) => !r.startsWith("250 ")), cli.output().slice(-2_000)).toEqual([])
      // The check was made: its SPF result is in the message (Authentication-Results or ARC-Authentication-Results).
      const delivered = fs.readdirSync(path.join(dir, "Maildir", "new")).map((f) => fs.readFileSync(path.join(dir, "Maildir", "new", f), "utf8"))
      expect(delivered).toHaveLength(sessions)
      for (const m of delivered) expect(m).toMatch(/spf=(temperror|fail|permerror)/i)
      expect(most, `${most} UDP sockets at once for ${sessions} sessions`).toBeGreaterThan(0)
      expect(most, `${most} UDP sockets at once for ${sessions} sessions`).toBeLessThanOrEqual(sessions * 2)
    } finally {
      for (const c of clients) c.close()
      await cli?.kill()
      await dns?.stop()
      silent.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
