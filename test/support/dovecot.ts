/**
 * Dovecot's LMTP server as a real upstream: a minimal configuration in a temporary directory,
 * LMTP on a free loopback port and on a unix socket, a passwd-file userdb that knows only the
 * users given (anyone else gets 550 5.1.1 at RCPT), Maildirs read back, stopped by its PID.
 * Dovecot switches to the mail user's uid, so this needs root (tests skip otherwise).
 *
 * @example
 * const dovecot = await startDovecot({ users: ["known"] })
 * try {
 *   // ... relay to lmtp://127.0.0.1:${dovecot.port} ...
 *   expect(dovecot.delivered("known")).toHaveLength(1)
 * } finally {
 *   await dovecot.stop()
 * }
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./runtimes.ts"
import { spawnLogged, waitForPort } from "./process.ts"

export interface Dovecot {
  readonly port: number
  /** The LMTP unix socket. */
  readonly socket: string
  readonly pid: number
  /** The messages in `user`'s Maildir/new, oldest first. */
  readonly delivered: (user: string) => ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

export const dovecotAvailable = (): boolean => process.getuid?.() === 0 && fs.existsSync("/usr/sbin/dovecot")

export const startDovecot = async (options: { readonly users: ReadonlyArray<string> }): Promise<Dovecot> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dovecot-"))
  // The mail user (nobody) must reach its home below here.
  fs.chmodSync(dir, 0o755)
  const mail = path.join(dir, "mail")
  fs.mkdirSync(mail, { mode: 0o777 })
  fs.chmodSync(mail, 0o777)
  const run = path.join(dir, "run")
  const usersFile = path.join(dir, "users")
  fs.writeFileSync(usersFile, options.users.map((u) => `${u}:{PLAIN}unused:65534:65534::${path.join(mail, u)}::\n`).join(""))
  const port = await freePort()
  const log = path.join(dir, "dovecot.log")
  const conf = path.join(dir, "dovecot.conf")
  fs.writeFileSync(conf, `
protocols = lmtp
base_dir = ${run}
state_dir = ${path.join(run, "state")}
instance_name = sb-${path.basename(dir)}
listen = 127.0.0.1
log_path = ${log}
ssl = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_login_user = dovenull
auth_username_format = %Ln
passdb {
  driver = passwd-file
  args = ${usersFile}
}
userdb {
  driver = passwd-file
  args = ${usersFile}
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${port}
  }
  unix_listener lmtp {
    mode = 0666
  }
}
`)
  const child = spawnLogged("/usr/sbin/dovecot", ["-F", "-c", conf])
  const pid = child.pid
  const readLog = () => child.output() + (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "")
  const stop = async () => {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForPort(port, "dovecot", { exited: child.gone, log: readLog, attempts: 200 })
  } catch (error) {
    await stop()
    throw error
  }
  return {
    port,
    socket: path.join(run, "lmtp"),
    pid,
    delivered: (user) => {
      const box = path.join(mail, user, "Maildir", "new")
      if (!fs.existsSync(box)) return []
      return fs.readdirSync(box).sort().map((f) => fs.readFileSync(path.join(box, f), "utf8"))
    },
    stop
  }
}
