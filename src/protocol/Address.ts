/**
 * Reverse-path and forward-path parsing (RFC 5321 section 4.1.2, with the RFC 6531 SMTPUTF8
 * extensions), and the inverse: writing a mailbox back into a path.
 *
 * @example
 * Address.parsePath("<\"john doe\"@example.com>", { smtputf8: false, allowNull: false })
 * // { _tag: "Ok", mailbox: { local: "john doe", domain: "example.com", address: "\"john doe\"@example.com" } }
 */
import type { Mailbox } from "./Envelope.ts"

export type ParsedPath =
  | { readonly _tag: "Ok"; readonly mailbox: Mailbox | null }
  | { readonly _tag: "Error"; readonly reason: "Syntax" | "NonAscii" | "TooLong" }

export interface PathOptions {
  /** Whether UTF-8 is allowed in the local part and domain (RFC 6531). */
  readonly smtputf8: boolean
  /** Whether the null path `<>` is allowed (reverse-path only). */
  readonly allowNull: boolean
  /** Whether the bare `<postmaster>` is allowed (forward-path only, RFC 5321 4.5.1). */
  readonly allowPostmaster?: boolean
}

// RFC 5321 4.5.3.1.
export const maxLocalPartOctets = 64
export const maxDomainOctets = 255
export const maxPathOctets = 256
const maxLabelOctets = 63

const ok = (mailbox: Mailbox | null): ParsedPath => ({ _tag: "Ok", mailbox })
const syntax: ParsedPath = { _tag: "Error", reason: "Syntax" }
const tooLong: ParsedPath = { _tag: "Error", reason: "TooLong" }
const nonAscii: ParsedPath = { _tag: "Error", reason: "NonAscii" }

/** Octets of `s` once encoded as UTF-8, without allocating. */
export const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

const ATEXT_SPECIALS = "!#$%&'*+-/=?^_`{|}~"
const isAlnum = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
const isAsciiAtext = (c: number): boolean => isAlnum(c) || ATEXT_SPECIALS.includes(String.fromCharCode(c))

/**
 * Invisible characters that change how text around them reads: the line and paragraph
 * separators (a line break to some viewers), the bidi marks, embeddings, overrides and isolates
 * (U+202E shows `alice@example.com` as another address: "Trojan Source", CVE-2021-42574), and
 * U+FEFF. An address reaches log lines, the Received header and DSNs; PRECIS (RFC 8264) and
 * IDNA2008 refuse them in identifiers too. The joiners U+200C/U+200D stay: scripts need them.
 */
const isInvisibleControl = (cp: number): boolean =>
  cp === 0x2028 || cp === 0x2029 || cp === 0x200e || cp === 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
  (cp >= 0x2066 && cp <= 0x2069) || cp === 0xfeff

/**
 * UTF8-non-ascii as RFC 6531 allows it, minus what never belongs in an address: C1 controls,
 * lone surrogates, U+FFFD (which only appears when the line held invalid UTF-8) and the
 * invisible controls above.
 */
const isAcceptableNonAscii = (s: string, i: number): boolean => {
  const cp = s.codePointAt(i)
  if (cp === undefined || cp < 0xa0 || cp === 0xfffd || isInvisibleControl(cp)) return false
  return !(cp >= 0xd800 && cp <= 0xdfff)
}

/** Width in UTF-16 units of the code point at `i` (2 for a surrogate pair). */
const width = (s: string, i: number): number => (s.charCodeAt(i) >= 0xd800 && s.charCodeAt(i) <= 0xdbff ? 2 : 1)

/** True when `local` can be written without quotes (RFC 5321 Dot-string). */
export const isDotString = (local: string): boolean => {
  if (local.length === 0) return false
  let atomLength = 0
  for (let i = 0; i < local.length; i += width(local, i)) {
    const c = local.charCodeAt(i)
    if (c === 0x2e) {
      if (atomLength === 0) return false
      atomLength = 0
    } else if (c < 0x80 ? isAsciiAtext(c) : isAcceptableNonAscii(local, i)) {
      atomLength++
    } else {
      return false
    }
  }
  return atomLength > 0
}

/** Writes a local part as a Quoted-string, escaping only `"` and `\` as RFC 5321 4.1.2 asks. */
export const quoteLocal = (local: string): string => `"${local.replace(/["\\]/g, "\\$&")}"`

/** Builds a mailbox from its parts, quoting the local part when a path needs it. */
export const mailbox = (local: string, domain: string): Mailbox => ({
  local,
  domain,
  address: `${isDotString(local) ? local : quoteLocal(local)}@${domain}`
})

const isIpv4 = (s: string): boolean => {
  const parts = s.split(".")
  return parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255)
}

const isIpv6 = (s: string): boolean => {
  let text = s
  const lastColon = text.lastIndexOf(":")
  if (lastColon === -1) return false
  const tail = text.slice(lastColon + 1)
  if (tail.includes(".")) {
    if (!isIpv4(tail)) return false
    // An embedded IPv4 address stands for the last two 16-bit groups.
    text = text.slice(0, lastColon + 1) + "0:0"
  }
  const halves = text.split("::")
  if (halves.length > 2) return false
  const groups = (h: string): Array<string> => (h === "" ? [] : h.split(":"))
  const all = halves.flatMap(groups)
  if (!all.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false
  return halves.length === 1 ? all.length === 8 : all.length <= 7
}

const isLdhStr = (s: string): boolean => /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(s)

/** RFC 5321 address-literal, brackets included. */
export const isAddressLiteral = (s: string): boolean => {
  if (!s.startsWith("[") || !s.endsWith("]") || s.length < 3) return false
  const inner = s.slice(1, -1)
  if (isIpv4(inner)) return true
  const colon = inner.indexOf(":")
  if (colon <= 0) return false
  const tag = inner.slice(0, colon)
  const content = inner.slice(colon + 1)
  if (tag.toLowerCase() === "ipv6") return isIpv6(content)
  // General-address-literal: Standardized-tag ":" 1*dcontent (printable ASCII but [ \ ]).
  return isLdhStr(tag) && /^[\x21-\x5a\x5e-\x7e]+$/.test(content)
}

/** RFC 5321 Domain (sub-domains joined by dots); U-labels only when `smtputf8`. */
export const isDomain = (s: string, smtputf8: boolean): boolean => {
  if (s.length === 0 || utf8Length(s) > maxDomainOctets) return false
  return s.split(".").every((label) => {
    if (label.length === 0) return false
    let ascii = true
    for (let i = 0; i < label.length; i += width(label, i)) {
      const c = label.charCodeAt(i)
      if (c >= 0x80) {
        if (!smtputf8 || !isAcceptableNonAscii(label, i)) return false
        ascii = false
      } else if (!isAlnum(c) && c !== 0x2d) return false
    }
    if (label.startsWith("-") || label.endsWith("-")) return false
    // The 63-octet limit binds the A-label; a U-label's A-label length is not known here.
    return !ascii || label.length <= maxLabelOctets
  })
}

/** Parses a Quoted-string starting at `s[0] === '"'`; returns the unquoted value and its end. */
const parseQuoted = (s: string): { readonly value: string; readonly end: number } | undefined => {
  let value = ""
  let i = 1
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c === 0x22) return { value, end: i + 1 }
    if (c === 0x5c) {
      const next = s.charCodeAt(i + 1)
      // quoted-pairSMTP is %d92 %d32-126: no controls, no UTF-8.
      if (!(next >= 0x20 && next <= 0x7e)) return undefined
      value += s[i + 1]
      i += 2
    } else if (c >= 0x80) {
      if (!isAcceptableNonAscii(s, i)) return undefined
      const w = width(s, i)
      value += s.slice(i, i + w)
      i += w
    } else if (c >= 0x20 && c <= 0x7e) {
      value += s[i]
      i++
    } else {
      return undefined
    }
  }
  return undefined
}

const parseMailbox = (s: string, smtputf8: boolean): ParsedPath => {
  let local: string
  let rest: string
  let localOctets: number
  if (s.startsWith("\"")) {
    const quoted = parseQuoted(s)
    if (quoted === undefined) return syntax
    local = quoted.value
    localOctets = utf8Length(s.slice(0, quoted.end))
    rest = s.slice(quoted.end)
  } else {
    const at = s.indexOf("@")
    if (at === -1) return syntax
    local = s.slice(0, at)
    // Syntax is checked with UTF-8 allowed so that a well-formed UTF-8 address gets NonAscii.
    if (!isDotString(local)) return syntax
    localOctets = utf8Length(local)
    rest = s.slice(at)
  }
  if (!rest.startsWith("@")) return syntax
  const domain = rest.slice(1)
  const domainOk = domain.startsWith("[") ? isAddressLiteral(domain) : isDomain(domain, true)
  if (!domainOk) return utf8Length(domain) > maxDomainOctets ? tooLong : syntax
  if (localOctets > maxLocalPartOctets) return tooLong
  // Checked last so that a syntax error is reported as such, whatever the characters.
  if (!smtputf8 && /[^\x00-\x7f]/.test(s)) return nonAscii
  return ok(mailbox(local, domain))
}

/** Parses `<mailbox>`, `<@route,@route:mailbox>`, `<>` and `<postmaster>` per `options`. */
export const parsePath = (text: string, options: PathOptions): ParsedPath => {
  if (!text.startsWith("<") || !text.endsWith(">") || text.length < 2) return syntax
  if (utf8Length(text) > maxPathOctets) return tooLong
  const inner = text.slice(1, -1)
  if (inner === "") return options.allowNull ? ok(null) : syntax
  if (options.allowPostmaster === true && inner.toLowerCase() === "postmaster") {
    return ok({ local: inner, domain: "", address: inner })
  }
  let box = inner
  if (inner.startsWith("@")) {
    // A source route is obsolete (RFC 5321 appendix C): validated, then ignored.
    const colon = inner.indexOf(":")
    if (colon === -1) return syntax
    const route = inner.slice(0, colon).split(",")
    if (!route.every((hop) => hop.startsWith("@") && isDomain(hop.slice(1), options.smtputf8))) return syntax
    box = inner.slice(colon + 1)
  }
  return parseMailbox(box, options.smtputf8)
}

/** Writes a mailbox as a path: `<address>`, or `<>` for the null path. */
export const formatPath = (mailbox: Mailbox | null): string => (mailbox === null ? "<>" : `<${mailbox.address}>`)
