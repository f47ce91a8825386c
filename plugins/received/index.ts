/**
 * received: adds the RFC 5321 §4.4 trace header that every SMTP server must prepend, naming the
 * client, this bridge, the protocol (RFC 3848 / RFC 6531 keywords), TLS and the time.
 *
 * @example
 * import { received } from "./plugins/received/index.ts"
 * received({ includeUser: false })
 * // Received: from laptop.example ([192.0.2.7]) by mx.example.com (smtp-bridge) with ESMTPSA
 * //   id 01J2ABC for <bob@example.net> (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
 * //   (authenticated); Tue, 01 Jul 2025 12:00:00 +0000
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { domainToUnicode } from "node:url"
import { Cidr, definePlugin, Senders, Verdict } from "../../src/index.ts"
import type { Plugin, SessionInfo, TransactionInfo } from "../../src/index.ts"

export interface ReceivedOptions {
  /**
   * Write the authenticated user name into the header (`(authenticated as alice)`). Off by
   * default: the header travels with the message to every recipient, and a login name is
   * something an operator may not want to publish.
   */
  readonly includeUser?: boolean
}

/** The RFC 3848 / RFC 6531 `with` keyword for this session and transaction. */
export const protocolOf = (session: SessionInfo, transaction: TransactionInfo): string => {
  const verb = session.helo?.verb
  if (verb === "HELO") return "SMTP"
  const tls = session.tls !== undefined ? "S" : ""
  const auth = session.user !== undefined ? "A" : ""
  if (verb === "LHLO") return `LMTP${tls}${auth}`
  const base = transaction.mailParams.smtputf8 === true ? "UTF8SMTP" : "ESMTP"
  return `${base}${tls}${auth}`
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const two = (n: number): string => String(n).padStart(2, "0")

/** An RFC 5322 date-time in UTC, e.g. `Tue, 01 Jul 2025 12:00:00 +0000`. */
export const rfc5322Date = (millis: number): string => {
  const d = new Date(millis)
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`
}

/** Longest client-given text written: a domain name's limit (RFC 1035 §2.3.4). */
export const maxNameLength = 255

const cap = (s: string): string => (s.length > maxNameLength ? `${s.slice(0, maxNameLength - 3)}...` : s)

// The HELO name and user name come from the client: keep them to one token of printable ASCII
// that cannot close a comment, start a new clause or end the header. Anything else (C1 controls
// such as U+0085, which some readers take as a line end, U+FFFD, line and paragraph separators,
// bidi overrides) becomes `_`, one per code point.
const token = (s: string): string => cap(Array.from(s, (c) => (/^[\x21-\x7e]$/.test(c) && !/[()\\;"<>]/.test(c) ? c : "_")).join("")) || "unknown"
const commentText = (s: string): string =>
  cap(Array.from(s, (c) => (/^[\x20-\x7e]$/.test(c) ? c : "_")).join("")).replace(/[()\\]/g, "\\$&")

/**
 * The EHLO name as written: printable ASCII, or a valid internationalised domain name as its
 * U-labels under SMTPUTF8 (RFC 6531 §3.7.3) and as its A-labels otherwise.
 */
export const heloText = (name: string, smtputf8: boolean): string => {
  if (/^[\x21-\x7e]*$/.test(name)) return token(name)
  const ascii = Senders.canonicalDomain(name)
  if (ascii === undefined) return token(name)
  return smtputf8 ? cap(domainToUnicode(ascii)) : ascii
}

// RFC 5321 address-literal: IPv6 clients appear as `[IPv6:...]`, IPv4-mapped ones as IPv4.
const addressLiteral = (address: string): string => {
  const canonical = Cidr.canonical(address)
  if (canonical === undefined) return `[${token(address)}]`
  return Cidr.familyOf(canonical) === 6 ? `[IPv6:${canonical}]` : `[${canonical}]`
}

/** The value of the Received field for this session and transaction at `millis`. */
export const receivedValue = (
  session: SessionInfo,
  transaction: TransactionInfo,
  millis: number,
  options: ReceivedOptions = {}
): string => {
  const parts = [
    `from ${heloText(session.helo?.name ?? "unknown", transaction.mailParams.smtputf8 === true)} (${addressLiteral(session.remoteAddress)})`,
    `by ${session.hostname} (smtp-bridge)`,
    `with ${protocolOf(session, transaction)}`,
    `id ${transaction.id}`
  ]
  // With several recipients, naming one would leak it to the others (RFC 5321 §7.2).
  const only = transaction.recipients.length === 1 ? transaction.recipients[0] : undefined
  if (only !== undefined) parts.push(`for <${only.mailbox.address}>`)
  if (session.tls !== undefined) {
    parts.push(`(using ${commentText(session.tls.protocol)} with cipher ${commentText(session.tls.cipher)})`)
  }
  if (session.user !== undefined) {
    parts.push(options.includeUser === true ? `(authenticated as ${commentText(session.user)})` : "(authenticated)")
  }
  return `${parts.join(" ")}; ${rfc5322Date(millis)}`
}

/**
 * Creates the plugin. Its `data` hook adds one `Received` field on top of the message and
 * continues. The password never appears; the user name only with `includeUser: true`.
 *
 * @example
 * defineConfig({ plugins: [received({ includeUser: true })] })
 */
export const received = (options: ReceivedOptions = {}): Plugin =>
  definePlugin({
    name: "received",
    // Runs for every message: untraced, as the bridge names each hook in its own span when tracing.
    data: Effect.fnUntraced(function*({ session, transaction, addHeader }) {
      const now = yield* Clock.currentTimeMillis
      addHeader("Received", receivedValue(session, transaction, now, options))
      return Verdict.Continue
    })
  })

export default received
