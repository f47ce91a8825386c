/**
 * A real rspamd for tests: Debian's rules and defaults (/etc/rspamd), but a private LOCAL_CONFDIR,
 * run, db and log directory, one normal worker on a free loopback port (no controller, proxy or
 * fuzzy worker, no Redis), DNS sent to the given server (a test's dnsmasq), stopped by its PID.
 *
 * @example
 * const scanner = await startRspamd({ dnsPort: dns.port, local: { "milter_headers.conf": 'use = ["x-spamd-bar"];' } })
 * startBridge({ rspamd: scanner.url })
 * await scanner.stop()
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { spawnLogged, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"
import { installed } from "./tools.ts"

export const rspamdAvailable = (): boolean => process.getuid?.() === 0 && installed("/usr/bin/rspamd") && fs.existsSync("/etc/rspamd/common.conf")

export interface Rspamd {
  /** `http://127.0.0.1:PORT` of the normal worker. */
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

export const startRspamd = async (options: { readonly dnsPort: number; readonly local?: Readonly<Record<string, string>> }): Promise<Rspamd> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-rspamd-"))
  fs.mkdirSync(path.join(dir, "local.d"))
  fs.mkdirSync(path.join(dir, "override.d"))
  for (const [name, text] of Object.entries(options.local ?? {})) fs.writeFileSync(path.join(dir, "local.d", name), text)
  const port = await freePort()
  fs.writeFileSync(path.join(dir, "rspamd.conf"), `
.include "$CONFDIR/common.conf"
options {
  pidfile = "$RUNDIR/rspamd.pid";
  .include "$CONFDIR/options.inc"
  dns { nameserver = ["127.0.0.1:${options.dnsPort}"]; timeout = 1s; retransmits = 1; }
}
logging { type = "console"; level = "error"; }
worker "normal" {
  bind_socket = "127.0.0.1:${port}";
  .include "$CONFDIR/worker-normal.inc"
  count = 1;
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
  } catch (e) {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  return {
    url: `http://127.0.0.1:${port}`,
    output: child.output,
    stop: async () => {
      await child.stop(5_000)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
