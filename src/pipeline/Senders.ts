/**
 * Who may send as which address, one rule for MAIL FROM, the header From and Sender, and DKIM:
 * sender patterns (`local@domain`, `@domain`, `*`), the way addresses are compared, and the
 * strict reading of a message's From and Sender fields.
 *
 * Domains are compared in their IDNA A-label form after NFC (`Bücher.example`, its NFD spelling
 * and `xn--bcher-kva.example` are one domain, as DNS sees them). Local parts are compared
 * byte for byte except for ASCII letter case: `String.prototype.toLowerCase` would let a Kelvin
 * sign (U+212A) pass for `k` or an Ångström sign (U+212B) for `å`, a different mailbox to every
 * mail system that stores local parts as they are.
 *
 * @example
 * const rule = Senders.parsePattern("@example.com")!
 * Senders.allows([rule], { local: "alice", domain: "EXAMPLE.com", address: "alice@EXAMPLE.com" }) // true
 * Senders.fromHeaders(message.headers) // { _tag: "Ok", from: [...], sender: undefined }
 */
import { domainToASCII } from "node:url"
import * as Address from "../protocol/Address.ts"
import * as AddressList from "../protocol/AddressList.ts"
import type { Mailbox } from "../protocol/Envelope.ts"
import * as Notes from "./Notes.ts"

export type Pattern =
  | { readonly kind: "everything" }
  | { readonly kind: "domain"; readonly domain: string }
  | { readonly kind: "address"; readonly local: string; readonly domain: string }

const LDH_DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/

/**
 * The domain as compared: its A-label form in lower case (an address literal in lower case), or
 * `undefined` when it is no valid domain. Runtimes differ on what `domainToASCII` lets through
 * (Deno keeps spaces and brackets), so the result is checked as a host name again.
 */
export const canonicalDomain = (domain: string): string | undefined => {
  if (domain.startsWith("[")) return Address.isAddressLiteral(domain) ? domain.replace(/[A-Z]/g, (c) => c.toLowerCase()) : undefined
  const ascii = /^[A-Za-z0-9.-]+$/.test(domain) && !/(^|\.)xn--/i.test(domain)
    ? domain.toLowerCase()
    : domainToASCII(domain.normalize("NFC"))
  return LDH_DOMAIN.test(ascii) ? ascii : undefined
}

/** ASCII letters in lower case, every other character as it is. */
export const foldLocal = (local: string): string => local.replace(/[A-Z]/g, (c) => c.toLowerCase())

/** Splits `local@domain` at the last `@`; `undefined` when either side is empty or the domain invalid. */
const splitAddress = (text: string): { readonly local: string; readonly domain: string } | undefined => {
  const at = text.lastIndexOf("@")
  if (at <= 0 || at === text.length - 1) return undefined
  const domain = canonicalDomain(text.slice(at + 1))
  return domain === undefined ? undefined : { local: foldLocal(text.slice(0, at)), domain }
}

/** `*`, `@domain` or `local@domain`; `undefined` for anything else. */
export const parsePattern = (entry: string): Pattern | undefined => {
  const text = entry.trim()
  if (text === "*") return { kind: "everything" }
  if (text.startsWith("@")) {
    const domain = text.length > 1 && !text.slice(1).includes("@") ? canonicalDomain(text.slice(1)) : undefined
    return domain === undefined ? undefined : { kind: "domain", domain }
  }
  const address = splitAddress(text)
  return address === undefined ? undefined : { kind: "address", ...address }
}

/** The pattern allowing only `address`, when it is one (a user name that is an address). */
export const ownAddress = (address: string): Pattern | undefined => {
  const split = splitAddress(address)
  return split === undefined ? undefined : { kind: "address", ...split }
}

const allowsOne = (pattern: Pattern, mailbox: Mailbox): boolean => {
  if (pattern.kind === "everything") return true
  if (canonicalDomain(mailbox.domain) !== pattern.domain) return false
  return pattern.kind === "domain" || foldLocal(mailbox.local) === pattern.local
}

/** Whether any of `patterns` allows `mailbox`. */
export const allows = (patterns: ReadonlyArray<Pattern>, mailbox: Mailbox): boolean =>
  patterns.some((pattern) => allowsOne(pattern, mailbox))

export type Headers =
  | {
    readonly _tag: "Ok"
    /** Every mailbox of the From field (none when it is absent or an empty group). */
    readonly from: ReadonlyArray<Mailbox>
    readonly sender: Mailbox | undefined
  }
  | { readonly _tag: "Invalid"; readonly header: "From" | "Sender"; readonly reason: string }

/**
 * The From and Sender mailboxes of a header section, read strictly: more than one From or Sender
 * field (RFC 5322 §3.6 allows one; a signer and a reader may each pick a different one), a value
 * that is no address-list, or a Sender that is not exactly one mailbox is `Invalid`.
 */
export const fromHeaders = (headers: ReadonlyArray<{ readonly name: string; readonly value: string }>): Headers => {
  const known = parsed.get(headers)
  if (known !== undefined) return known
  const result = parseFromHeaders(headers)
  parsed.set(headers, result)
  return result
}

/**
 * Answers by header section (a message's `headers` array is made once and never changed):
 * sender-identity and dkim-sign both read the From of every message, and parsing it twice cost
 * ~30 µs a message.
 */
const parsed = new WeakMap<ReadonlyArray<{ readonly name: string; readonly value: string }>, Headers>()

const parseFromHeaders = (headers: ReadonlyArray<{ readonly name: string; readonly value: string }>): Headers => {
  const from = headers.filter((h) => h.name.toLowerCase() === "from")
  const sender = headers.filter((h) => h.name.toLowerCase() === "sender")
  if (from.length > 1) return { _tag: "Invalid", header: "From", reason: `appears ${from.length} times` }
  if (sender.length > 1) return { _tag: "Invalid", header: "Sender", reason: `appears ${sender.length} times` }
  let fromBoxes: ReadonlyArray<Mailbox> = []
  if (from.length === 1) {
    const parsed = AddressList.parse(from[0]!.value)
    if (parsed._tag === "Error") return { _tag: "Invalid", header: "From", reason: `is not a valid address list (${parsed.reason})` }
    fromBoxes = parsed.mailboxes.map((m) => m.mailbox)
  }
  let senderBox: Mailbox | undefined
  if (sender.length === 1) {
    const parsed = AddressList.parse(sender[0]!.value)
    if (parsed._tag === "Error") return { _tag: "Invalid", header: "Sender", reason: `is not a valid address (${parsed.reason})` }
    if (parsed.mailboxes.length !== 1) return { _tag: "Invalid", header: "Sender", reason: "must hold exactly one address" }
    senderBox = parsed.mailboxes[0]!.mailbox
  }
  return { _tag: "Ok", from: fromBoxes, sender: senderBox }
}

/**
 * Set on the transaction by sender-identity when the header From and Sender of an authenticated
 * session's message are addresses its user may send as. DKIM signers sign an authenticated
 * user's message only with this note: without it (a forged From let through, or no
 * sender-identity plugin at all) nothing is signed.
 */
export const HeaderFromAllowed: Notes.Key<true> = Notes.key<true>("smtp-bridge/senders.header-from-allowed")

/** An address for a reply or a log line: printable ASCII only, at most 100 characters. */
export const printable = (text: string): string => {
  const clean = text.replace(/[^\x21-\x7e]/g, "?")
  return clean.length > 100 ? `${clean.slice(0, 97)}...` : clean
}

/** Addresses an authentication backend allows `identity` to send as; see `grant`. */
export interface Grant {
  readonly identity: string
  readonly patterns: ReadonlyArray<Pattern>
}

/**
 * Set on the session by an authentication backend that knows which addresses its user may send
 * as (a directory's `mail` attributes, an HTTP backend's `senders`). sender-identity allows these
 * for MAIL FROM and the header From and Sender, besides the configured `senders` of that user.
 * It carries the identity it was granted to and counts only while the session's user is that
 * identity, so it never outlives the login it came with (a STARTTLS resets the login).
 */
export const Granted: Notes.Key<Grant> = Notes.key<Grant>("smtp-bridge/senders.granted")

/**
 * Records on `notes` (the session's) the sender entries a backend gave for `identity`, parsed
 * as `parsePattern` does; returns the entries that are no address, `@domain` or `*` (left out),
 * so the backend can log them.
 *
 * @example
 * const invalid = Senders.grant(session.notes, "alice", ["alice@example.com", "@alice.example"]) // []
 */
export const grant = (notes: Notes.Notes, identity: string, entries: ReadonlyArray<string>): ReadonlyArray<string> => {
  const patterns: Array<Pattern> = []
  const invalid: Array<string> = []
  for (const entry of entries) {
    const pattern = parsePattern(entry)
    if (pattern === undefined) invalid.push(entry)
    else patterns.push(pattern)
  }
  notes.set(Granted, { identity, patterns })
  return invalid
}

/** The patterns granted to `user` on this session by its authentication backend (none when another identity's). */
export const grantedTo = (notes: Notes.Notes, user: string): ReadonlyArray<Pattern> => {
  const granted = notes.get(Granted)
  return granted !== undefined && granted.identity === user ? granted.patterns : []
}
