/**
 * Dovecot's auth service alone (no IMAP, no LMTP) as a real SASL backend: a private configuration
 * in a temporary directory, `auth_mechanisms = plain login scram-sha-256`, a passwd-file passdb
 * with the users given (hashes made by `doveadm pw`), the auth listener on a private unix socket
 * and on a free loopback TCP port. Users of `broken.test` go to a checkpassword passdb that
 * always answers "temporary failure" (exit 111), so that Dovecot's `FAIL ... temp` can be tested.
 * `stop` and `start` again keep the socket path and the port (Dovecot killed, then back).
 * Needs root (Dovecot drops to its own users), like test/support/dovecot.ts.
 *
 * @example
 * const dovecot = await startDovecotAuth({ users: [{ name: "alice@example.test", password: "secret", scheme: "SCRAM-SHA-256" }] })
 * // authDovecot({ path: dovecot.socket }) or authDovecot({ host: "127.0.0.1", port: dovecot.port })
 * await dovecot.stop()
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { spawnLogged, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"

export interface AuthUser {
  readonly name: string
  readonly password: string
  /** Dovecot's password scheme: `SCRAM-SHA-256` (SCRAM and PLAIN work) or `BLF-CRYPT` (bcrypt: PLAIN only). */
  readonly scheme: "SCRAM-SHA-256" | "BLF-CRYPT"
}

export interface DovecotAuth {
  /** The auth unix socket. */
  readonly socket: string
  readonly port: number
  /** Running now. */
  readonly running: () => boolean
  /**
   * Kills it (SIGKILL to the master and to its child processes, by PID: a SIGTERM'd master waits
   * up to 30 s for its auth process's clients) and waits until it is gone; the directory stays for `start`.
   */
  readonly stop: () => Promise<void>
  /** Starts it again with the same socket and port. */
  readonly start: () => Promise<void>
  /** Stops it and removes its directory. */
  readonly remove: () => Promise<void>
  readonly log: () => string
}

export const dovecotAuthAvailable = (): boolean => process.getuid?.() === 0 && fs.existsSync("/usr/sbin/dovecot") && fs.existsSync("/usr/bin/doveadm")

const hash = (user: AuthUser): string => execFileSync("/usr/bin/doveadm", ["pw", "-s", user.scheme, ...(user.scheme === "BLF-CRYPT" ? ["-r", "5"] : []), "-p", user.password], { encoding: "utf8" }).trim()

export const startDovecotAuth = async (options: { readonly users: ReadonlyArray<AuthUser> }): Promise<DovecotAuth> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dovecot-auth-"))
  fs.chmodSync(dir, 0o755)
  const run = path.join(dir, "run")
  const usersFile = path.join(dir, "users")
  fs.writeFileSync(usersFile, options.users.map((u) => `${u.name}:${hash(u)}\n`).join(""))
  fs.chmodSync(usersFile, 0o644)
  const tempfail = path.join(dir, "tempfail.sh")
  // checkpassword (Dovecot's passdb driver): exit 111 is "temporary problem".
  fs.writeFileSync(tempfail, "#!/bin/sh\nexit 111\n", { mode: 0o755 })
  const port = await freePort()
  const log = path.join(dir, "dovecot.log")
  const conf = path.join(dir, "dovecot.conf")
  fs.writeFileSync(conf, `
protocols =
base_dir = ${run}
state_dir = ${path.join(run, "state")}
instance_name = sb-${path.basename(dir)}
listen = 127.0.0.1
log_path = ${log}
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
auth_mechanisms = plain login scram-sha-256
auth_failure_delay = 0
passdb {
  driver = checkpassword
  args = ${tempfail}
  username_filter = *@broken.test
}
passdb {
  driver = passwd-file
  args = username_format=%u ${usersFile}
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  unix_listener auth-bridge {
    mode = 0666
  }
  inet_listener auth-tcp {
    address = 127.0.0.1
    port = ${port}
  }
}
`)
  let child: ReturnType<typeof spawnLogged> | undefined
  const readLog = () => (child?.output() ?? "") + (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "")
  const childrenOf = (pid: number): Array<number> => {
    try {
      return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((p) => p !== "").map(Number)
    } catch {
      return []
    }
  }
  const stop = async () => {
    const c = child
    child = undefined
    if (c === undefined) return
    const children = childrenOf(c.pid)
    c.kill("SIGKILL")
    for (const pid of children) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // Already gone.
      }
    }
    await c.exited
  }
  const start = async () => {
    child = spawnLogged("/usr/sbin/dovecot", ["-F", "-c", conf])
    try {
      await waitForPort(port, "dovecot auth", { exited: child.gone, log: readLog, attempts: 200 })
    } catch (error) {
      await stop()
      throw error
    }
  }
  try {
    await start()
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    socket: path.join(run, "auth-bridge"),
    port,
    running: () => child !== undefined,
    stop,
    start,
    remove: async () => {
      await stop()
      fs.rmSync(dir, { recursive: true, force: true })
    },
    log: readLog
  }
}
