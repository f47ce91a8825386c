/**
 * A strict parser for the address-list of header fields such as From and Sender (RFC 5322
 * §3.4 with the RFC 6532 UTF-8 extension): display names as words or quoted strings, comments
 * (nested), groups, angle addresses, quoted local parts, domain literals.
 *
 * Hand-written rather than taken from the libraries at hand (mailauth uses nodemailer's
 * addressparser): that one is built to be lenient, and leniency is exactly what a sender check
 * must not have. It reads `alice@example.com <ceo@example.com>` as ceo, `<alice@example.com>
 * ceo@example.com` as alice and `"x" <alice@example.com> <ceo@example.com>` as alice, while a
 * receiver may see ceo: a forged From gets past the check and is signed. Here anything that is not
 * a valid address-list is an error, so checker and receiver cannot disagree on the address.
 * Obsolete syntax (routes, whitespace inside dot-atoms, empty list elements) is refused too, and
 * so is an encoded word in an address (RFC 2047 §5 forbids it; some readers decode it anyway).
 *
 * @example
 * AddressList.parse(`"Alice (work)" <alice@example.com>, bob@example.org (Bob)`)
 * // { _tag: "Ok", mailboxes: [{ name: "Alice (work)", mailbox: { local: "alice", domain: "example.com", ... } }, ...] }
 * AddressList.parse(`alice@example.com <ceo@example.com>`) // { _tag: "Error", reason: "..." }
 */
import * as Address from "./Address.ts"
import type { Mailbox } from "./Envelope.ts"

export interface NamedMailbox {
  /** The display name as written (quotes and encoded words left as they are), if any. */
  readonly name: string | undefined
  readonly mailbox: Mailbox
}

export type Parsed =
  | { readonly _tag: "Ok"; readonly mailboxes: ReadonlyArray<NamedMailbox> }
  | { readonly _tag: "Error"; readonly reason: string }

/** Longer header values are refused: a From needs nowhere near this, and parsing stays bounded. */
export const maxLength = 8192

type Token =
  | { readonly kind: "atom" | "quoted" | "literal"; readonly text: string; readonly spaced: boolean }
  | { readonly kind: "special"; readonly text: string; readonly spaced: boolean }

class Invalid {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}
const fail = (reason: string): never => {
  throw new Invalid(reason)
}

const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]/
const SPECIALS = "<>:;,@."

/**
 * Characters allowed inside atoms, quoted strings and comments beyond ASCII (RFC 6532
 * UTF8-non-ascii), minus C1 controls (some readers end a line at U+0085) and lone surrogates.
 * U+FFFD, what invalid UTF-8 decodes to, is let through here so that a legacy client's Latin-1
 * display name is not refused, and refused in the address itself.
 */
const isNonAscii = (cp: number): boolean => cp >= 0xa0 && !(cp >= 0xd800 && cp <= 0xdfff)

const tokenize = (text: string): ReadonlyArray<Token> => {
  const tokens: Array<Token> = []
  let spaced = false
  let i = 0
  const chars = Array.from(text)
  const cpAt = (j: number): number => chars[j]!.codePointAt(0)!
  while (i < chars.length) {
    const c = chars[i]!
    const cp = cpAt(i)
    if (c === " " || c === "\t") {
      spaced = true
      i++
    } else if (c === "(") {
      // Comments nest (RFC 5322 §3.2.2) and may hold quoted pairs.
      let depth = 0
      do {
        if (i >= chars.length) fail("unterminated comment")
        const d = chars[i]!
        if (d === "\\") i++
        else if (d === "(") depth++
        else if (d === ")") depth--
        else if (!isPrintable(cpAt(i))) fail("a control character in a comment")
        i++
      } while (depth > 0)
      spaced = true
    } else if (c === "\"") {
      let value = ""
      i++
      for (;;) {
        if (i >= chars.length) fail("unterminated quoted string")
        const d = chars[i]!
        if (d === "\"") break
        if (d === "\\") {
          i++
          if (i >= chars.length || !isPrintable(cpAt(i))) fail("a bad quoted pair")
        } else if (!isPrintable(cpAt(i))) fail("a control character in a quoted string")
        value += chars[i]
        i++
      }
      i++
      tokens.push({ kind: "quoted", text: value, spaced })
      spaced = false
    } else if (c === "[") {
      const end = chars.indexOf("]", i)
      if (end === -1) fail("unterminated domain literal")
      tokens.push({ kind: "literal", text: chars.slice(i, end + 1).join(""), spaced })
      i = end + 1
      spaced = false
    } else if (SPECIALS.includes(c)) {
      tokens.push({ kind: "special", text: c, spaced })
      i++
      spaced = false
    } else if (ATEXT.test(c) || (cp >= 0x80 && isNonAscii(cp))) {
      let atom = ""
      while (i < chars.length && (ATEXT.test(chars[i]!) || (cpAt(i) >= 0x80 && isNonAscii(cpAt(i))))) atom += chars[i++]
      tokens.push({ kind: "atom", text: atom, spaced })
      spaced = false
    } else {
      fail(`an unexpected character U+${cp.toString(16).toUpperCase().padStart(4, "0")}`)
    }
  }
  return tokens
}

// VCHAR, WSP or UTF8-non-ascii: what quoted strings and comments may hold.
const isPrintable = (cp: number): boolean => (cp >= 0x20 && cp <= 0x7e) || cp === 0x09 || isNonAscii(cp)

const ENCODED_WORD = /=\?[^?]*\?[bq]\?[^?]*\?=/i

class Parser {
  i = 0
  readonly tokens: ReadonlyArray<Token>
  constructor(tokens: ReadonlyArray<Token>) {
    this.tokens = tokens
  }

  /** Consumes a "," and tells whether there was one. */
  comma(): boolean {
    if (!this.isSpecial(",")) return false
    this.i++
    return true
  }

  peek(offset = 0): Token | undefined {
    return this.tokens[this.i + offset]
  }
  isSpecial(text: string, offset = 0): boolean {
    const t = this.peek(offset)
    return t !== undefined && t.kind === "special" && t.text === text
  }
  expect(text: string, what: string): Token {
    if (!this.isSpecial(text)) fail(`expected ${what}`)
    return this.tokens[this.i++]!
  }

  /** address-list: addresses separated by commas, none empty. */
  list(): ReadonlyArray<NamedMailbox> {
    const out: Array<NamedMailbox> = []
    do {
      if (this.peek() === undefined || this.isSpecial(",")) fail("an empty address")
      out.push(...this.address())
    } while (this.comma())
    if (this.peek() !== undefined) fail(`unexpected "${this.peek()!.text}" after an address`)
    return out
  }

  /** How many tokens from here could form a phrase (words and the obsolete dots). */
  phraseLength(): number {
    let j = 0
    while (this.peek(j) !== undefined && (this.peek(j)!.kind === "atom" || this.peek(j)!.kind === "quoted" || this.isSpecial(".", j))) j++
    return j
  }

  /** A phrase followed by ":" is a group, otherwise a mailbox. */
  address(): ReadonlyArray<NamedMailbox> {
    const j = this.phraseLength()
    return j > 0 && this.isSpecial(":", j) ? this.group() : [this.mailbox()]
  }

  /** A phrase followed by "<" is a name-addr, otherwise an addr-spec. */
  mailbox(): NamedMailbox {
    return this.isSpecial("<", this.phraseLength()) ? this.nameAddr() : { name: undefined, mailbox: this.addrSpec() }
  }

  group(): ReadonlyArray<NamedMailbox> {
    this.phrase()
    this.expect(":", "\":\"")
    const out: Array<NamedMailbox> = []
    if (!this.isSpecial(";")) {
      do {
        if (this.peek() === undefined || this.isSpecial(",") || this.isSpecial(";")) fail("an empty address in a group")
        out.push(this.mailbox())
      } while (this.comma())
    }
    this.expect(";", "\";\" to end the group")
    return out
  }

  /** display-name: words (atoms or quoted strings), with the obsolete "." that initials use. */
  phrase(): string | undefined {
    const words: Array<string> = []
    while (this.peek() !== undefined && (this.peek()!.kind === "atom" || this.peek()!.kind === "quoted" || (this.isSpecial(".") && words.length > 0))) {
      words.push(this.tokens[this.i++]!.text)
    }
    return words.length === 0 ? undefined : words.join(" ")
  }

  nameAddr(): NamedMailbox {
    const name = this.phrase()
    this.expect("<", "\"<\"")
    if (this.isSpecial("@")) fail("a source route (obsolete) in an angle address")
    const mailbox = this.addrSpec()
    this.expect(">", "\">\" after the address")
    return { name, mailbox }
  }

  /** local-part "@" domain, each a dot-atom without inner whitespace, or quoted / literal. */
  addrSpec(): Mailbox {
    const first = this.peek()
    let local: string
    if (first?.kind === "quoted") {
      this.i++
      local = first.text
    } else {
      local = this.dotAtom("local part")
    }
    if (ENCODED_WORD.test(local)) fail("an encoded word in an address")
    if (local.includes("\uFFFD")) fail("invalid UTF-8 in an address")
    this.expect("@", "\"@\" in an address")
    const head = this.peek()
    let domain: string
    if (head?.kind === "literal") {
      this.i++
      domain = head.text
      if (!Address.isAddressLiteral(domain)) fail("an invalid domain literal")
    } else {
      domain = this.dotAtom("domain")
      if (!Address.isDomain(domain, true)) fail("an invalid domain")
    }
    if (local === "") fail("an empty local part")
    return Address.mailbox(local, domain)
  }

  dotAtom(what: string): string {
    const first = this.peek()
    if (first?.kind !== "atom") return fail(`expected a ${what}`)
    let text = first.text
    this.i++
    while (this.isSpecial(".")) {
      const next = this.peek(1)
      if (this.peek()!.spaced || next?.kind !== "atom" || next.spaced) return fail(`a bad dot in a ${what}`)
      text += "." + next.text
      this.i += 2
    }
    return text
  }
}

/** Parses an address-list (an unfolded header value). An empty value is an error. */
export const parse = (value: string): Parsed => {
  if (value.length > maxLength) return { _tag: "Error", reason: `longer than ${maxLength} characters` }
  try {
    const tokens = tokenize(value)
    if (tokens.length === 0) return { _tag: "Error", reason: "no address" }
    return { _tag: "Ok", mailboxes: new Parser(tokens).list() }
  } catch (e) {
    if (e instanceof Invalid) return { _tag: "Error", reason: e.reason }
    throw e
  }
}
