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
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./runtimes.ts"
import { supervise } from "./process.ts"

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

const waitForPort = async (port: number, exited: () => boolean, log: () => string): Promise<void> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (exited()) throw new Error(`dovecot exited before listening:\n${log()}`)
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy()
        resolve(true)
      })
      s.on("error", () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`dovecot did not listen on 127.0.0.1:${port}:\n${log()}`)
}

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
  const child = spawn("/usr/sbin/dovecot", ["-F", "-c", conf], { stdio: ["ignore", "pipe", "pipe"] })
  const pid = child.pid
  if (pid === undefined) throw new Error("cannot start /usr/sbin/dovecot")
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (t: string) => void (output += t))
  child.stderr.setEncoding("utf8").on("data", (t: string) => void (output += t))
  const supervised = supervise(child)
  const gone = supervised.gone
  const stopChild = () => supervised.stop()
  const readLog = () => output + (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "")
  const stop = async () => {
    await stopChild()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForPort(port, gone, readLog)
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
