/**
 * Delivery status notifications (RFC 3464) as `multipart/report; report-type=delivery-status`
 * messages (RFC 6522): what the spool sends to the envelope sender when a recipient failed
 * permanently or expired. With non-ASCII addresses the parts use the RFC 6533 `global` types.
 *
 * @example
 * const bytes = Dsn.build({
 *   reportingMta: "mx.example.net",
 *   arrivalDate: new Date(),
 *   originalSender: sender,
 *   recipients: [{ recipient, action: "failed", reply: Reply.make(550, "5.1.1", "User unknown") }],
 *   originalHeaders: "Subject: hi\r\n"
 * })
 */
import * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as Message from "../pipeline/Message.ts"
import type { Envelope, MailParams, Mailbox, Recipient } from "../protocol/Envelope.ts"
import type { Reply } from "../protocol/Reply.ts"
import * as Xtext from "../protocol/Xtext.ts"
import { concat } from "../util/Bytes.ts"

export interface RecipientStatus {
  readonly recipient: Recipient
  readonly action: "failed" | "delayed"
  /** The last reply for this recipient; its enhanced code becomes `Status` unless `status` is given. */
  readonly reply: Reply
  /** Overrides the status derived from `reply` (e.g. `4.4.7` for an expired message). */
  readonly status?: string
  /** The upstream host that gave `reply`, when known. */
  readonly remoteMta?: string
}

export interface Options {
  /** Our own host name: `Reporting-MTA` and the domain of the `From` address. */
  readonly reportingMta: string
  /** When the bridge accepted the original message. */
  readonly arrivalDate: Date
  /** The ENVID parameter of the original MAIL FROM, as received (xtext). */
  readonly envelopeId?: string | undefined
  readonly originalSender: Mailbox
  readonly recipients: ReadonlyArray<RecipientStatus>
  /** The original header section (CRLF line endings, without the blank line). */
  readonly originalHeaders: string
  /** The whole original message, returned instead of its headers when the sender asked for RET=FULL. */
  readonly originalMessage?: Uint8Array | undefined
  /** `Message-ID` of the notification, without angle brackets; a unique one by default. */
  readonly messageId?: string | undefined
  /** `Date` of the notification; now by default. */
  readonly date?: Date | undefined
}

const encoder = new TextEncoder()
const maxLine = 998

const twoDigits = (n: number): string => String(n).padStart(2, "0")
const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

/** RFC 5322 date-time in UTC; `toUTCString` would give the obsolete zone name `GMT`. */
export const formatDate = (date: Date): string =>
  `${days[date.getUTCDay()]}, ${twoDigits(date.getUTCDate())} ${months[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
  `${twoDigits(date.getUTCHours())}:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())} +0000`

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s)

const hasEightBit = (bytes: Uint8Array): boolean => {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return true
  return false
}

// Values come from envelopes and upstream replies: a CR or LF in them would forge fields.
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, " ").trim()

/** `Name: value`, folded at spaces, and broken hard when a single word would exceed 998 octets. */
const field = (name: string, value: string): string => {
  const lines: Array<string> = []
  let line = `${name}:`
  for (const word of oneLine(value).split(" ")) {
    if (word === "") continue
    if (line.length + 1 + word.length > 78 && line.trim().length > name.length + 1) {
      lines.push(line)
      line = ` ${word}`
    } else line += ` ${word}`
    while (line.length > maxLine) {
      lines.push(line.slice(0, maxLine))
      line = ` ${line.slice(maxLine)}`
    }
  }
  lines.push(line)
  return lines.join("\r\n") + "\r\n"
}

/** Every line ends with CRLF and none is longer than 998 octets; `fold` continues a broken line as a header would. */
const normalizeLines = (text: string, fold: boolean): string => {
  const out: Array<string> = []
  for (const line of text.split(/\r\n|\r|\n/)) {
    let rest = line
    while (encoder.encode(rest).byteLength > maxLine) {
      // Cut by characters, conservatively, so that a UTF-8 sequence is never split.
      const cut = Math.floor(maxLine / 4) * (isAscii(rest) ? 4 : 1)
      out.push(rest.slice(0, cut))
      rest = (fold ? " " : "") + rest.slice(cut)
    }
    out.push(rest)
  }
  while (out.length > 0 && out[out.length - 1] === "") out.pop()
  return out.length === 0 ? "" : out.join("\r\n") + "\r\n"
}

/**
 * The original message's bytes with bare CR/LF made CRLF and over-long lines broken. Written into
 * one buffer sized for the worst case (every byte a bare line end, plus a break per 998 octets):
 * an array of numbers here cost ~12 bytes of heap per byte of message (a 10 MB original grew the
 * process by 119 MiB and held the event loop 0.4 s).
 */
const normalizeBytes = (bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bytes.length * 2 + Math.ceil(bytes.length / maxLine) * 2 + 2)
  let at = 0
  let column = 0
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (b === 0x0d || b === 0x0a) {
      if (b === 0x0d && bytes[i + 1] === 0x0a) i++
      out[at++] = 0x0d
      out[at++] = 0x0a
      column = 0
      continue
    }
    if (column === maxLine) {
      out[at++] = 0x0d
      out[at++] = 0x0a
      column = 0
    }
    out[at++] = b
    column++
  }
  if (column > 0) {
    out[at++] = 0x0d
    out[at++] = 0x0a
  }
  return out.subarray(0, at)
}

/** RFC 3463 status: the reply's enhanced code, else the class of its basic code. */
export const statusOf = (entry: RecipientStatus): string => {
  if (entry.status !== undefined) return entry.status
  const enhanced = entry.reply.enhanced
  if (enhanced !== undefined && /^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced)) return enhanced
  const cls = Math.floor(entry.reply.code / 100)
  if (cls === 4 || cls === 5) return `${cls}.0.0`
  return entry.action === "failed" ? "5.0.0" : "4.0.0"
}

const diagnostic = (reply: Reply): string => `smtp; ${reply.code} ${[reply.enhanced ?? "", ...reply.lines].join(" ").trim()}`

// RFC 6533: non-ASCII addresses are typed utf-8 rather than rfc822.
const typedAddress = (address: string): string => `${isAscii(address) ? "rfc822" : "utf-8"}; ${address}`

const originalRecipient = (orcpt: string): string | undefined => {
  const semicolon = orcpt.indexOf(";")
  if (semicolon <= 0) return undefined
  const decoded = Xtext.decode(orcpt.slice(semicolon + 1))
  return decoded === undefined ? undefined : `${orcpt.slice(0, semicolon)}; ${decoded}`
}

const deliveryStatus = (options: Options): string => {
  let text = field("Reporting-MTA", `dns; ${options.reportingMta}`)
  if (options.envelopeId !== undefined) {
    text += field("Original-Envelope-Id", Xtext.decode(options.envelopeId) ?? options.envelopeId)
  }
  text += field("Arrival-Date", formatDate(options.arrivalDate))
  for (const entry of options.recipients) {
    text += "\r\n"
    const orcpt = entry.recipient.params.orcpt === undefined ? undefined : originalRecipient(entry.recipient.params.orcpt)
    if (orcpt !== undefined) text += field("Original-Recipient", orcpt)
    text += field("Final-Recipient", typedAddress(entry.recipient.mailbox.address))
    text += field("Action", entry.action)
    text += field("Status", statusOf(entry))
    if (entry.remoteMta !== undefined) text += field("Remote-MTA", `dns; ${entry.remoteMta}`)
    text += field("Diagnostic-Code", diagnostic(entry.reply))
  }
  return text
}

const humanReadable = (options: Options, failed: boolean): string => {
  const lines = [
    `This is the mail delivery system at ${options.reportingMta}.`,
    "",
    failed
      ? "Your message could not be delivered to one or more recipients. The details are below and the"
      : "Your message has not yet been delivered to one or more recipients. Delivery will be retried;",
    failed
      ? "original message is attached."
      : "you do not need to send it again.",
    ""
  ]
  for (const entry of options.recipients) {
    const where = entry.remoteMta === undefined ? "" : ` (from ${oneLine(entry.remoteMta)})`
    const state = entry.action === "failed" ? "failed" : "delayed"
    lines.push(`<${oneLine(entry.recipient.mailbox.address)}>: ${state}: ${oneLine(diagnostic(entry.reply).slice(6))}${where}`)
  }
  return normalizeLines(lines.join("\r\n"), false)
}

const uniqueBoundary = (parts: ReadonlyArray<string | Uint8Array>): string => {
  for (;;) {
    const boundary = `=_smtp-bridge_${randomBytes(12).toString("hex")}`
    // The boundary must not occur in any part; with 96 random bits this loop runs once.
    const needle = `--${boundary}`
    const clash = parts.some((p) =>
      typeof p === "string" ? p.includes(needle) : Buffer.from(p.buffer, p.byteOffset, p.byteLength).includes(needle)
    )
    if (!clash) return boundary
  }
}


/**
 * Builds the notification message (CRLF line endings, no line over 998 octets). The subject says
 * "Undelivered" when any recipient failed, else "Delayed".
 */
export const build = (options: Options): Uint8Array => {
  const failed = options.recipients.some((r) => r.action === "failed")
  const global = !isAscii(options.originalSender.address) ||
    options.recipients.some((r) => !isAscii(r.recipient.mailbox.address) || !isAscii(r.recipient.params.orcpt ?? ""))
  const text = humanReadable(options, failed)
  const status = deliveryStatus(options)
  const full = options.originalMessage === undefined ? undefined : normalizeBytes(options.originalMessage)
  const headers = normalizeLines(options.originalHeaders, true)
  const returned: string | Uint8Array = full ?? headers
  const boundary = uniqueBoundary([text, status, returned])
  const messageId = options.messageId === undefined
    ? `${Date.now().toString(36)}.${randomBytes(8).toString("hex")}@${options.reportingMta}`
    : options.messageId.replace(/^<|>$/g, "")
  const eightBit = (s: string) => !isAscii(s)

  let head = ""
  head += field("From", `Mail Delivery System <MAILER-DAEMON@${options.reportingMta}>`)
  head += field("To", `<${options.originalSender.address}>`)
  head += field("Subject", failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)")
  head += field("Date", formatDate(options.date ?? new Date()))
  head += field("Message-ID", `<${messageId}>`)
  head += field("Auto-Submitted", "auto-replied")
  head += field("MIME-Version", "1.0")
  head += `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"\r\n`
  head += "\r\n"
  head += "This is a MIME-encapsulated message.\r\n\r\n"

  const part = (type: string, description: string, cte: string | undefined): string =>
    `--${boundary}\r\n` + field("Content-Description", description) + field("Content-Type", type) +
    (cte === undefined ? "" : field("Content-Transfer-Encoding", cte)) + "\r\n"

  let body = part(`text/plain; charset=${eightBit(text) ? "utf-8" : "us-ascii"}`, "Notification", eightBit(text) ? "8bit" : "7bit")
  body += text + "\r\n"
  body += part(global ? "message/global-delivery-status" : "message/delivery-status", "Delivery report", undefined)
  body += status + "\r\n"

  let returnedPart: Uint8Array
  if (full !== undefined) {
    const type = global ? "message/global" : "message/rfc822"
    const eight = hasEightBit(full)
    returnedPart = concat([encoder.encode(part(type, "Undelivered Message", eight ? "8bit" : "7bit")), full])
  } else {
    const type = global ? "message/global-headers" : "text/rfc822-headers"
    returnedPart = encoder.encode(part(type, "Undelivered Message Headers", eightBit(headers) ? "8bit" : undefined) + headers)
  }
  return concat([encoder.encode(head + body), returnedPart, encoder.encode(`\r\n--${boundary}--\r\n`)])
}

/** RFC 3461: no NOTIFY means FAILURE; NEVER, or a list without FAILURE, means no DSN. */
export const wantsFailureNotice = (recipient: Recipient): boolean => {
  const notify = recipient.params.notify
  return notify === undefined || (!notify.includes("NEVER") && notify.includes("FAILURE"))
}

/**
 * Bigger originals are returned as headers only, whatever RET says (RFC 3461 section 4.3 allows
 * it; Postfix's bounce_size_limit is 50 KB, Exim's return_size_limit 100 KB). A notice is built in
 * memory, and in pass-through inside the client's session: at 10 MB one cost the process 32 MiB
 * and 0.17 s of event loop, at 1 MiB 6 MiB and 0.03 s (Bun, measured).
 */
export const maxReturnedBytes = 1024 * 1024

/** The message a notice is about, as each delivery path can read it back. */
export interface Original<E> {
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
  readonly arrivalDate: Date
  readonly size: number
  /** The header section (CRLF line endings), read only when the original is not returned whole. */
  readonly headers: Effect.Effect<string, E>
  readonly content: () => Stream.Stream<Uint8Array, E>
}

export interface Failure {
  readonly recipient: Recipient
  readonly reply: Reply
  /** Transient until the spool gave up: `Status: 4.4.7`. */
  readonly expired?: boolean | undefined
}

/** A failure notice ready to send: its bytes, the envelope to send them with, and whom it reports. */
export interface Notice {
  readonly bytes: Uint8Array
  readonly envelope: Envelope
  readonly recipients: ReadonlyArray<Recipient>
}

/**
 * The failure notice of pass-through and of the spool alike, or `undefined` when none is due:
 * never to the null sender, and only for recipients whose NOTIFY asks for it. ENVID and RET come
 * from the original's MAIL parameters; the notice's own MAIL parameters say what its bytes need:
 * BODY=8BITMIME when any byte is 8-bit (a returned 8-bit original, UTF-8 diagnostics), SMTPUTF8
 * when the sender's address (the envelope recipient and `To`) is not ASCII. An upstream then
 * gets a notice it can take, or refuses it for the right reason (RFC 6152, RFC 6531).
 */
export const failureNotice = <E>(
  reportingMta: string,
  original: Original<E>,
  failures: ReadonlyArray<Failure>
): Effect.Effect<Notice | undefined, E> =>
  Effect.gen(function*() {
    const sender = original.mailFrom
    const noticed = failures.filter((f) => wantsFailureNotice(f.recipient))
    if (sender === null || noticed.length === 0) return undefined
    const full = original.mailParams.ret === "FULL" && original.size <= maxReturnedBytes
    const bytes = build({
      reportingMta,
      arrivalDate: original.arrivalDate,
      envelopeId: original.mailParams.envid,
      originalSender: sender,
      recipients: noticed.map((f) => ({
        recipient: f.recipient,
        action: "failed" as const,
        reply: f.reply,
        ...(f.expired === true ? { status: "4.4.7" } : {})
      })),
      originalHeaders: full ? "" : yield* original.headers,
      originalMessage: full ? yield* Message.collect(original.content()) : undefined
    })
    const mailParams: MailParams = {
      raw: {},
      ...(hasEightBit(bytes) ? { body: "8BITMIME" as const } : {}),
      ...(isAscii(sender.address) ? {} : { smtputf8: true })
    }
    return {
      bytes,
      envelope: { mailFrom: null, mailParams, recipients: [{ mailbox: sender, params: { raw: {} } }] },
      recipients: noticed.map((f) => f.recipient)
    }
  })
