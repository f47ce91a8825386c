/**
 * The macros a milter gets at each stage, named and valued as Postfix sends them
 * (`milter_connect_macros` and the rest of Postfix's defaults). A milter that lists its own
 * (SMFIF_SETSYMLIST) gets those of them the bridge knows; a macro without a value is not sent.
 */
import type { SessionInfo, TransactionInfo } from "../../src/index.ts"
import type { MacroStage } from "./Protocol.ts"

export interface Facts {
  readonly session: SessionInfo
  readonly daemonName: string
  readonly transaction?: TransactionInfo | undefined
  readonly rcpt?: string | undefined
}

const hostOf = (address: string): string => address.slice(address.lastIndexOf("@") + 1)

/** Every macro the bridge can give, by name, for these facts. */
const known = (f: Facts): Record<string, string | undefined> => {
  const s = f.session
  const tx = f.transaction
  const from = tx?.mailFrom
  return {
    j: s.hostname,
    _: `unknown [${s.remoteAddress}]`,
    v: "smtp-bridge",
    "{daemon_name}": f.daemonName,
    "{daemon_addr}": s.localAddress,
    "{daemon_port}": String(s.localPort),
    "{client_addr}": s.remoteAddress,
    "{client_port}": String(s.remotePort),
    "{client_name}": "unknown",
    "{client_ptr}": "unknown",
    "{client_connections}": undefined,
    "{tls_version}": s.tls?.protocol,
    "{cipher}": s.tls?.cipher,
    "{auth_type}": s.user === undefined ? undefined : s.authMechanism,
    "{auth_authen}": s.user,
    i: tx?.id,
    "{mail_addr}": tx === undefined ? undefined : from?.address ?? "",
    "{mail_host}": from === null || from === undefined ? undefined : hostOf(from.address),
    "{mail_mailer}": tx === undefined ? undefined : "smtp",
    "{rcpt_addr}": f.rcpt,
    "{rcpt_host}": f.rcpt === undefined ? undefined : hostOf(f.rcpt),
    "{rcpt_mailer}": f.rcpt === undefined ? undefined : "smtp"
  }
}

/** Postfix's defaults per stage. */
const defaults: Record<MacroStage, ReadonlyArray<string>> = {
  connect: ["j", "{daemon_name}", "{daemon_addr}", "v", "_", "{client_addr}", "{client_port}", "{client_name}"],
  helo: ["{tls_version}", "{cipher}"],
  mail: ["i", "{auth_type}", "{auth_authen}", "{mail_addr}", "{mail_host}", "{mail_mailer}"],
  rcpt: ["i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"],
  data: ["i"],
  eoh: ["i"],
  eom: ["i"]
}

/** The name/value pairs for `stage`; `wanted` is the milter's own list, when it gave one. */
export const forStage = (stage: MacroStage, facts: Facts, wanted: ReadonlyArray<string> | undefined): ReadonlyArray<readonly [string, string]> => {
  const values = known(facts)
  const out: Array<readonly [string, string]> = []
  for (const name of wanted ?? defaults[stage]) {
    // A milter may write `{i}` for `i` and the reverse; Postfix accepts both.
    const bare = name.replace(/^\{(.)\}$/, "$1")
    const value = values[name] ?? values[bare] ?? values[`{${name}}`]
    if (value !== undefined) out.push([name, value])
  }
  return out
}
