// Replay answers DNS from the capture: sessions whose replies depend on SPF (mailauth-verify, SPF
// at MAIL FROM, DMARC at DATA) are captured against a real DNS server (dnsmasq on loopback), then
// the zone is turned around (pass fails, fail passes) on the same port, and later the server is
// stopped. The same config replays with no difference either way, asking the DNS nothing: the
// answers come from the capture. The same files without their `dns` (as captures older than it)
// ask today's DNS, change, and the report counts the lookups that were not in the capture.
//
//   $ smtp-bridge serve --config dns.config.ts --capture DIR         swaks a@pass.spf.test (250), a@fail.spf.test (550 5.7.23)
//   (zone turned around)
//   $ smtp-bridge replay DIR --config dns.config.ts                  replayed 2 sessions: 0 changed, 2 unchanged     exit 0, no query
//   $ smtp-bridge replay OLD --config dns.config.ts --json           MAIL FROM 250 -> 550, 550 -> 250; dnsNotCaptured > 0    exit 1
//   (zone stopped)
//   $ smtp-bridge replay DIR --config dns.config.ts                  replayed 2 sessions: 0 changed, 2 unchanged     exit 0
//
// The CLI runs under the runtime running this file: Bun in the Bun run of the suite, Deno in the Deno run.
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Dnsmasq, startDnsmasq, txt } from "../support/dnsmasq.ts"
import { until } from "../support/eventually.ts"
import { run } from "../support/exec.ts"
import { currentRuntime, projectRoot, runCli, spawnCli } from "../support/runtimes.ts"

fs.mkdirSync(path.join(projectRoot, ".tmp"), { recursive: true })
const dir = fs.mkdtempSync(path.join(projectRoot, ".tmp", "capture-replay-dns-"))
const captures = path.join(dir, "captures")
// The same sessions as captured before DNS answers were recorded: no `dns` field.
const older = path.join(dir, "older")
// The pass session with one recorded answer removed: exactly that lookup is not in the capture.
const partial = path.join(dir, "partial")
const maildir = path.join(dir, "mail")

const zone = (pass: string, fail: string) => [
  txt("pass.spf.test", `v=spf1 ip4:${pass} -all`),
  txt("fail.spf.test", `v=spf1 ip4:${fail} -all`),
  txt("_dmarc.pass.spf.test", "v=DMARC1; p=reject")
]

let dns: Dnsmasq | undefined
let port = 0
let config = ""

const files = (d: string): Array<string> => (fs.existsSync(d) ? fs.readdirSync(d).filter((n) => n.endsWith(".json")).sort() : [])
const readAll = (d: string) => files(d).map((f) => ({ file: f, capture: JSON.parse(fs.readFileSync(path.join(d, f), "utf8")) }))
const inputs = (c: { exchanges: Array<{ input: string }> }) => c.exchanges.map((e) => e.input)

beforeAll(async () => {
  dns = await startDnsmasq({ zones: ["spf.test"], ttl: 60, lines: zone("127.0.0.1", "192.0.2.1") })
  port = dns.port
  config = path.join(dir, "dns.config.ts")
  fs.writeFileSync(config, [
    `import { defineConfig } from "smtp-bridge"`,
    `export default defineConfig({ hostname: "mx.dns-replay.test", trust: ["127.0.0.0/8"], maildir: ${JSON.stringify(maildir)},`,
    `  dns: { servers: [${JSON.stringify(dns.server)}], timeoutMs: 500, attempts: 1 },`,
    `  verify: { skipTrusted: false, spfAtMailFrom: true, policy: { spfFail: "reject", dmarcReject: "reject", temperror: "defer" } } })`
  ].join("\n"))
  const cli = await spawnCli(currentRuntime, ["serve", "--config", config, "--listen", "127.0.0.1:0", "--capture", captures])
  try {
    const [, smtp] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
    const pass = await run("swaks", ["--server", `127.0.0.1:${smtp}`, "--ehlo", "client.test", "--from", "a@pass.spf.test", "--to", "b@corp.test"])
    expect(pass.code, pass.stdout).toBe(0)
    const fail = await run("swaks", ["--server", `127.0.0.1:${smtp}`, "--ehlo", "client.test", "--from", "a@fail.spf.test", "--to", "b@corp.test"])
    expect(fail.stdout).toContain("<** 550 5.7.23 SPF check failed")
    await until("two capture files", () => files(captures).length === 2)
  } finally {
    await cli.kill()
  }
  fs.mkdirSync(older)
  fs.mkdirSync(partial)
  for (const { file, capture } of readAll(captures)) {
    const { dns: _, ...v1 } = capture
    fs.writeFileSync(path.join(older, file), JSON.stringify(v1))
    if (inputs(capture).includes("MAIL FROM:<a@pass.spf.test>")) {
      const dmarcless = capture.dns.filter((d: { name: string }) => d.name !== "_dmarc.pass.spf.test")
      fs.writeFileSync(path.join(partial, file), JSON.stringify({ ...capture, dns: dmarcless }))
    }
  }
  // The zone turned around, on the same port the config names: pass.spf.test now fails, fail.spf.test passes.
  await dns.stop()
  dns = await startDnsmasq({ zones: ["spf.test"], ttl: 60, lines: zone("192.0.2.1", "127.0.0.1"), port, logQueries: true })
}, 120_000)

afterAll(async () => {
  await dns?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe(`replay answers DNS from the capture (CLI under ${currentRuntime})`, () => {
  it("records in each capture the answers its SPF and DMARC checks got", () => {
    const all = readAll(captures).map((x) => x.capture)
    const pass = all.find((c) => inputs(c).includes("MAIL FROM:<a@pass.spf.test>"))
    const fail = all.find((c) => inputs(c).includes("MAIL FROM:<a@fail.spf.test>"))
    expect(pass.dns).toContainEqual({ at: expect.any(Number), name: "pass.spf.test", type: "TXT", records: [["v=spf1 ip4:127.0.0.1 -all"]] })
    expect(pass.dns).toContainEqual({ at: expect.any(Number), name: "_dmarc.pass.spf.test", type: "TXT", records: [["v=DMARC1; p=reject"]] })
    expect(fail.dns).toEqual([{ at: expect.any(Number), name: "fail.spf.test", type: "TXT", records: [["v=spf1 ip4:192.0.2.1 -all"]] }])
    expect(pass.dnsTruncated).toBeUndefined()
  })

  it("replays through the same config with no difference and asks the changed DNS nothing", async () => {
    const r = await runCli(["replay", captures, "--config", config], currentRuntime)
    expect(r.code, r.output).toBe(0)
    expect(r.stdout.trim()).toBe("replayed 2 sessions: 0 changed, 2 unchanged")
    expect(dns!.queries()).toEqual([])
  }, 60_000)

  it("replays captures without DNS answers against today's DNS: both SPF decisions flip, and the lookups are counted", async () => {
    const r = await runCli(["replay", older, "--config", config, "--json"], currentRuntime)
    expect(r.code, r.output).toBe(1)
    const report = JSON.parse(r.stdout)
    const first = report.sessions.map((s: { differences: Array<{ input: string; old: Array<string>; new: Array<string> }> }) =>
      [s.differences[0]?.input, s.differences[0]?.old[0]?.slice(0, 3), s.differences[0]?.new[0]?.slice(0, 3)]
    ).sort()
    expect(first).toEqual([["MAIL FROM:<a@fail.spf.test>", "550", "250"], ["MAIL FROM:<a@pass.spf.test>", "250", "550"]])
    expect(report.sessions.every((s: { dns: { notCaptured: number } }) => s.dns.notCaptured > 0)).toBe(true)
    expect(report.sessions.flatMap((s: { dns: { queries: Array<string> } }) => s.dns.queries).sort()).toEqual(["TXT fail.spf.test", "TXT pass.spf.test"])
    expect(report.dnsNotCaptured).toBe(report.sessions.reduce((n: number, s: { dns: { notCaptured: number } }) => n + s.dns.notCaptured, 0))
    expect(dns!.queries()).toEqual(expect.arrayContaining(["TXT pass.spf.test", "TXT fail.spf.test"]))
  }, 60_000)

  it("names the one lookup a capture lacks, answered by today's DNS, without calling it a difference", async () => {
    const r = await runCli(["replay", partial, "--config", config], currentRuntime)
    expect(r.code, r.output).toBe(0)
    const lines = r.stdout.trim().split("\n")
    expect(lines[0]).toMatch(/\(session \S+ from 127\.0\.0\.1\): no difference; 1 DNS query not in the capture, answered by the config's resolver: TXT _dmarc\.pass\.spf\.test$/)
    expect(lines.at(-1)).toBe("replayed 1 session: 0 changed, 1 unchanged; 1 DNS query not in the captures")
  }, 60_000)

  it("replays with the DNS server gone with no difference (a live lookup would fail and defer)", async () => {
    await dns!.stop()
    dns = undefined
    const r = await runCli(["replay", captures, "--config", config], currentRuntime)
    expect(r.code, r.output).toBe(0)
    expect(r.stdout.trim()).toBe("replayed 2 sessions: 0 changed, 2 unchanged")
    // The control: the capture without answers, with the server gone, is deferred where it passed.
    const old = await runCli(["replay", older, "--config", config], currentRuntime)
    expect(old.code, old.output).toBe(1)
    expect(old.stdout).toContain("new: 451 4.7.24 Temporary DNS failure checking SPF for pass.spf.test, try again later (by mailauth-verify)")
  }, 60_000)
})
