/**
 * The client side of Dovecot's authentication protocol (v1.x, the `auth-client` socket Postfix's
 * `smtpd_sasl_type = dovecot` uses), the pure part: framing of the LF-ended lines with a bound,
 * Dovecot's tab-escaping, and the lines exchanged. Hand-written: no kept JavaScript library
 * speaks this protocol (the few published ones are single-request PLAIN checkers without request
 * multiplexing, limits or the CONT exchange).
 *
 * Protocol: C `VERSION 1 2`, `CPID <n>`; S `VERSION 1 x`, `MECH <name> <flags...>`*, `SPID`,
 * `CUID`, `COOKIE`, `DONE`; then C `AUTH <id> <mech> service=smtp ... [resp=<b64>]`,
 * S `CONT <id> <b64>` / `OK <id> user=...` / `FAIL <id> [temp] ...`, C `CONT <id> <b64>`,
 * C `CANCEL <id>`. Fields are TAB-separated; `\x01` escapes NUL, TAB, CR, LF and itself.
 */

/** Dovecot's tab-escaping: `\x01` then `0` NUL, `1` itself, `t` TAB, `r` CR, `n` LF. */
export const escape = (value: string): string =>
  value.replace(/[\x00\x01\t\r\n]/g, (c) => `\x01${c === "\x00" ? "0" : c === "\x01" ? "1" : c === "\t" ? "t" : c === "\r" ? "r" : "n"}`)

export const unescape = (value: string): string => {
  if (!value.includes("\x01")) return value
  return value.replace(/\x01(.?)/gs, (_, c: string) => (c === "0" ? "\x00" : c === "1" ? "\x01" : c === "t" ? "\t" : c === "r" ? "\r" : c === "n" || c === "l" ? "\n" : c))
}

/**
 * Splits the byte stream into lines. A line longer than `max` (an auth server that is broken or
 * hostile) makes `push` give `"too-long"`: the caller drops the connection, so memory stays bounded.
 */
export class LineReader {
  private buffered = ""
  private readonly decoder = new TextDecoder("utf-8")
  private readonly max: number
  constructor(max: number) {
    this.max = max
  }
  push(chunk: Uint8Array): Array<string> | "too-long" {
    this.buffered += this.decoder.decode(chunk, { stream: true })
    const lines = this.buffered.split("\n")
    this.buffered = lines.pop()!
    if (this.buffered.length > this.max || lines.some((l) => l.length > this.max)) return "too-long"
    return lines
  }
}

/** A mechanism Dovecot announced, with its flags (`plaintext`, `anonymous`, `private`, `dictionary`, ...). */
export interface Mech {
  readonly name: string
  readonly flags: ReadonlySet<string>
}

/** What an answer line says about one request. */
export type Answer =
  | { readonly _tag: "Cont"; readonly id: number; readonly data: string }
  | { readonly _tag: "Ok"; readonly id: number; readonly user: string | undefined }
  | { readonly _tag: "Fail"; readonly id: number; readonly temporary: boolean; readonly user: string | undefined; readonly reason: string | undefined }

const ID = /^[1-9][0-9]{0,9}$/

const params = (fields: ReadonlyArray<string>): Map<string, string> => {
  const map = new Map<string, string>()
  for (const field of fields) {
    const eq = field.indexOf("=")
    if (eq === -1) map.set(field, "")
    else map.set(field.slice(0, eq), unescape(field.slice(eq + 1)))
  }
  return map
}

/** A handshake line: the server's version, a mechanism, the end; anything else (SPID, CUID, COOKIE, unknown) is `Other`. */
export type Handshake =
  | { readonly _tag: "Version"; readonly major: number }
  | { readonly _tag: "Mech"; readonly mech: Mech }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Other" }

export const parseHandshake = (line: string): Handshake => {
  const [command, ...rest] = line.split("\t")
  switch (command) {
    case "VERSION":
      return { _tag: "Version", major: Number(rest[0]) }
    case "MECH":
      return { _tag: "Mech", mech: { name: rest[0] ?? "", flags: new Set(rest.slice(1)) } }
    case "DONE":
      return { _tag: "Done" }
    default:
      return { _tag: "Other" }
  }
}

/** An answer line, or `undefined` for a line that is none (an unknown command, a bad id). */
export const parseAnswer = (line: string): Answer | undefined => {
  const [command, idText, ...rest] = line.split("\t")
  if (idText === undefined || !ID.test(idText)) return undefined
  const id = Number(idText)
  switch (command) {
    case "CONT":
      return { _tag: "Cont", id, data: rest[0] ?? "" }
    case "OK":
      return { _tag: "Ok", id, user: params(rest).get("user") }
    case "FAIL": {
      const p = params(rest)
      // `temp` (2.3) or `code=temp_fail` (2.4): the backend could not decide.
      return { _tag: "Fail", id, temporary: p.has("temp") || p.get("code") === "temp_fail", user: p.get("user"), reason: p.get("reason") }
    }
    default:
      return undefined
  }
}

/** The client's handshake; `cpid` tells this connection apart in Dovecot's logs. */
export const hello = (cpid: number): string => `VERSION\t1\t2\nCPID\t${cpid}\n`

/** What Dovecot is told about the SMTP client, as Postfix tells it. */
export interface Client {
  readonly service: string
  readonly session: string
  readonly localAddress: string
  readonly localPort: number
  readonly remoteAddress: string
  readonly remotePort: number
  /** The SMTP session is encrypted (TLS): Dovecot's `secured`, which its `disable_plaintext_auth` looks at. */
  readonly secured: boolean
  /** Dovecot's `no-penalty`: its failure delay per address does not apply. */
  readonly noPenalty: boolean
}

/**
 * `AUTH` for a new request. `nologin`: the bridge only authenticates, nobody logs in to a
 * mailbox. `resp=` carries the initial response (empty for RFC 4954's `=`).
 */
export const auth = (id: number, mechanism: string, client: Client, initial: string | undefined): string => {
  const fields = [
    "AUTH", String(id), mechanism, `service=${escape(client.service)}`, `session=${escape(client.session)}`,
    `lip=${escape(client.localAddress)}`, `rip=${escape(client.remoteAddress)}`, `lport=${client.localPort}`, `rport=${client.remotePort}`,
    ...(client.secured ? ["secured"] : []), ...(client.noPenalty ? ["no-penalty"] : []), "nologin", ...(initial === undefined ? [] : [`resp=${initial}`])
  ]
  return `${fields.join("\t")}\n`
}

export const cont = (id: number, response: string): string => `CONT\t${id}\t${response}\n`
export const cancel = (id: number): string => `CANCEL\t${id}\n`

/** Base64 as Dovecot sends and takes it (what the bridge already checked, or checks before passing on). */
export const isBase64 = (text: string): boolean => /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)
