/**
 * Real milters for the milter plugin's tests, each started on a loopback port with private
 * config in its own directory and stopped by PID: the python3-milter test milter
 * (test/e2e/milter/editor_milter.py) and OpenDKIM.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { listeningPort, spawnLogged, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"

export interface RunningMilter {
  readonly port: number
  readonly dir: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

// Debian's python3-milter lives in the system interpreter's dist-packages.
const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"

/** The test milter, on a loopback port or (`unix`) a socket in its directory; what it saw at each end of message is in `seen()`. */
export const startEditorMilter = async (
  options: { readonly unix?: boolean } = {}
): Promise<RunningMilter & { readonly seen: () => ReadonlyArray<Record<string, unknown>>; readonly socket: string }> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-milter-"))
  const seenFile = path.join(dir, "seen.jsonl")
  const unixPath = path.join(dir, "milter.sock")
  const child = spawnLogged(python, [path.join(import.meta.dirname, "..", "e2e", "milter", "editor_milter.py"), options.unix === true ? `unix:${unixPath}` : "0", seenFile])
  let port = 0
  if (options.unix === true) {
    for (let i = 0; i < 200 && !fs.existsSync(unixPath); i++) await new Promise((r) => setTimeout(r, 50))
    if (!fs.existsSync(unixPath)) throw new Error(`the test milter did not create ${unixPath}:\n${child.output()}`)
  } else port = await listeningPort(child.pid, "the test milter")
  return {
    port,
    socket: options.unix === true ? `unix:${unixPath}` : `inet:127.0.0.1:${port}`,
    dir,
    output: child.output,
    seen: () => fs.existsSync(seenFile) ? fs.readFileSync(seenFile, "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)) : [],
    stop: async () => {
      await child.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** OpenDKIM signing for `domain` with selector `test`; `dnsRecord` is the TXT value to publish. */
export const startOpendkim = async (domain: string): Promise<RunningMilter & { readonly dnsRecord: string }> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-opendkim-"))
  execFileSync("opendkim-genkey", ["-b", "1024", "-d", domain, "-s", "test", "-D", dir])
  const txt = fs.readFileSync(path.join(dir, "test.txt"), "utf8")
  const dnsRecord = [...txt.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join("")
  fs.writeFileSync(path.join(dir, "opendkim.conf"), [
    "Syslog no",
    "Background no",
    `Domain ${domain}`,
    "Selector test",
    `KeyFile ${path.join(dir, "test.private")}`,
    "Mode s",
    "Canonicalization relaxed/relaxed",
    "SignHeaders From,To,Subject,Date,Message-ID",
    "InternalHosts 127.0.0.1",
    `PidFile ${path.join(dir, "opendkim.pid")}`,
    "Socket inet:0@127.0.0.1",
    "RequireSafeKeys no",
    ""
  ].join("\n"))
  const child = spawnLogged("opendkim", ["-f", "-x", path.join(dir, "opendkim.conf")])
  const port = await listeningPort(child.pid, "opendkim")
  return {
    port,
    dir,
    dnsRecord,
    output: child.output,
    stop: async () => {
      await child.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/**
 * rspamd as a milter: Debian's rules (/etc/rspamd), a private LOCAL_CONFDIR, run, db and log
 * directory, a proxy worker with `milter = yes` and the normal worker it scans with, each on a
 * free loopback port (no controller, fuzzy worker or Redis). DNS goes to a loopback port where nothing
 * answers, so no query leaves the machine. X-Spamd-Result and the other extended headers are on.
 */
export const startRspamdMilter = async (): Promise<RunningMilter> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-rspamd-milter-"))
  fs.mkdirSync(path.join(dir, "local.d"))
  fs.mkdirSync(path.join(dir, "override.d"))
  fs.writeFileSync(path.join(dir, "local.d", "milter_headers.conf"), "extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n")
  const port = await freePort()
  const deadDns = await freePort()
  const scanner = await freePort()
  fs.writeFileSync(path.join(dir, "rspamd.conf"), `
.include "$CONFDIR/common.conf"
options {
  pidfile = "$RUNDIR/rspamd.pid";
  .include "$CONFDIR/options.inc"
  dns { nameserver = ["127.0.0.1:${deadDns}"]; timeout = 200ms; retransmits = 1; }
}
logging { type = "console"; level = "${process.env.MILTER_DEBUG === "1" ? "info" : "error"}"; }
worker "normal" {
  bind_socket = "127.0.0.1:${scanner}";
  .include "$CONFDIR/worker-normal.inc"
  count = 1;
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${port}";
  milter = yes;
  timeout = 60s;
  count = 1;
  upstream "local" { default = yes; hosts = "127.0.0.1:${scanner}"; }
  reject_message = "Spam message rejected";
}
`)
  const child = spawnLogged("/usr/bin/rspamd", [
    "-f", "-i", "-u", "root", "-g", "root",
    "-c", path.join(dir, "rspamd.conf"),
    "--var=CONFDIR=/etc/rspamd", `--var=LOCAL_CONFDIR=${dir}`, `--var=RUNDIR=${dir}`, `--var=DBDIR=${dir}`, `--var=LOGDIR=${dir}`
  ])
  try {
    // Loading Debian's rules takes seconds, more on a busy machine.
    await waitForPort(port, "rspamd", { exited: child.gone, log: child.output, attempts: 1200 })
    await waitForPort(scanner, "rspamd's normal worker", { exited: child.gone, log: child.output, attempts: 1200 })
  } catch (e) {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  return {
    port,
    dir,
    output: child.output,
    stop: async () => {
      await child.stop(5_000)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
