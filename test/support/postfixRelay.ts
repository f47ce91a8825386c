/**
 * A private Postfix as a relay upstream for tests: its own config, queue and data directories in
 * a temporary directory (/etc/postfix untouched), smtpd on a free loopback port, relaying for
 * `domain` to the recipients listed in `relay_recipient_maps` only (anyone else gets
 * 550 5.1.1 at RCPT), `postfix start-fg` stopped by its PID. Needs root (tests skip otherwise).
 *
 * @example
 * const postfix = await startPostfixRelay({ domain: "relay.test", recipients: ["known@relay.test"] })
 * // ... relay to smtp://127.0.0.1:${postfix.port}?tls=none ...
 * await postfix.stop()
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { spawnLogged, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"
import { installed } from "./tools.ts"

export const postfixAvailable = (): boolean => process.getuid?.() === 0 && installed("/usr/sbin/postfix")

export interface PostfixRelay {
  readonly port: number
  readonly stop: () => Promise<void>
}

export const startPostfixRelay = async (options: { readonly domain: string; readonly recipients: ReadonlyArray<string> }): Promise<PostfixRelay> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-postfix-"))
  fs.chmodSync(dir, 0o755)
  const etc = path.join(dir, "etc")
  for (const d of ["etc", "spool", "data"]) fs.mkdirSync(path.join(dir, d))
  fs.writeFileSync(path.join(etc, "recipients"), options.recipients.map((r) => `${r} OK\n`).join(""))
  const port = await freePort()
  // The relay host is a closed port: the tests ask at RCPT and never send a message through.
  const deadPort = await freePort()
  fs.writeFileSync(path.join(etc, "main.cf"), `compatibility_level = 3.6
queue_directory = ${path.join(dir, "spool")}
data_directory = ${path.join(dir, "data")}
mail_owner = postfix
setgid_group = postdrop
myhostname = upstream.test
mydomain = upstream.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = ${options.domain}
relay_recipient_maps = texthash:${path.join(etc, "recipients")}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:${deadPort}
smtp_dns_support_level = disabled
smtpd_tls_security_level = none
maillog_file_prefixes = ${dir}
maillog_file = ${path.join(dir, "maillog")}
`)
  fs.writeFileSync(path.join(etc, "master.cf"), `127.0.0.1:${port} inet n - n - 20 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`)
  const setPermissions = spawnLogged("/usr/sbin/postfix", ["-c", etc, "set-permissions"])
  await setPermissions.exited
  const child = spawnLogged("/usr/sbin/postfix", ["-c", etc, "start-fg"])
  try {
    await waitForPort(port, "postfix", { exited: child.gone, log: child.output, attempts: 400 })
  } catch (e) {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  return {
    port,
    stop: async () => {
      // `postfix stop` ends the master and its daemons; a signal to start-fg's process alone
      // left them holding its output open.
      await spawnLogged("/usr/sbin/postfix", ["-c", etc, "stop"]).exited
      await child.stop(5_000)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
