/**
 * SMTP command-line parsing (RFC 5321 section 4.1.1 and the ESMTP extensions the bridge
 * advertises). Pure: a line in, a command or the reply that refuses it out.
 *
 * @example
 * Command.parse("MAIL FROM:<a@example.com> SIZE=1000", { smtputf8: false })
 * // { _tag: "Ok", command: { verb: "MAIL", from: { local: "a", ... }, params: { size: 1000, raw: { SIZE: "1000" } } } }
 */
import * as Address from "./Address.ts"
import type { Mailbox, MailParams, RcptParams } from "./Envelope.ts"
import * as Reply from "./Reply.ts"
import * as Xtext from "./Xtext.ts"

export type Command =
  | { readonly verb: "EHLO" | "HELO" | "LHLO"; readonly domain: string }
  | { readonly verb: "MAIL"; readonly from: Mailbox | null; readonly params: MailParams }
  | { readonly verb: "RCPT"; readonly to: Mailbox; readonly params: RcptParams }
  | { readonly verb: "DATA" }
  | { readonly verb: "BDAT"; readonly size: number; readonly last: boolean }
  | { readonly verb: "RSET" }
  | { readonly verb: "NOOP" }
  | { readonly verb: "QUIT" }
  | { readonly verb: "STARTTLS" }
  | { readonly verb: "VRFY"; readonly argument: string }
  | { readonly verb: "EXPN"; readonly argument: string }
  | { readonly verb: "HELP"; readonly argument: string }
  | { readonly verb: "AUTH"; readonly mechanism: string; readonly initialResponse: string | undefined }

export type Verb = Command["verb"]

export type ParseResult =
  | { readonly _tag: "Ok"; readonly command: Command }
  | { readonly _tag: "Error"; readonly reply: Reply.Reply }

export interface ParseOptions {
  /** The current transaction declared SMTPUTF8: governs UTF-8 in RCPT paths. */
  readonly smtputf8: boolean
}

// --- ESMTP parameters -------------------------------------------------------------------------

type Raw = Record<string, string | undefined>
type Parsed<A> = { readonly _tag: "Ok"; readonly value: A } | { readonly _tag: "Error"; readonly reply: Reply.Reply }

const unsupported = (text: string): Parsed<never> => ({ _tag: "Error", reply: Reply.make(555, "5.5.4", text) })

/** Splits `KEY[=value]` tokens (RFC 5321 esmtp-param) into a record keyed by upper-cased keyword. */
const splitParams = (tokens: ReadonlyArray<string>, utf8: boolean): Parsed<Raw> => {
  const raw: Raw = {}
  const value = utf8 ? /^[\x21-\x3c\x3e-\x7e\u00a0-\uffff]+$/ : /^[\x21-\x3c\x3e-\x7e]+$/
  for (const token of tokens) {
    const eq = token.indexOf("=")
    const key = (eq === -1 ? token : token.slice(0, eq)).toUpperCase()
    const v = eq === -1 ? undefined : token.slice(eq + 1)
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key) || (v !== undefined && !value.test(v))) {
      return unsupported(`Malformed parameter ${Reply.echo(token)}`)
    }
    if (Object.hasOwn(raw, key)) return { _tag: "Error", reply: Reply.syntax(`Duplicate parameter ${Reply.echo(key)}`) }
    raw[key] = v
  }
  return { _tag: "Ok", value: raw }
}

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/** MAIL FROM parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH, REQUIRETLS. */
export const parseMailParams = (tokens: ReadonlyArray<string>): Parsed<MailParams> => {
  const split = splitParams(tokens, tokens.some((t) => t.toUpperCase() === "SMTPUTF8"))
  if (split._tag === "Error") return split
  const params: Mutable<MailParams> = { raw: split.value }
  for (const [key, value] of Object.entries(split.value)) {
    const upper = value?.toUpperCase()
    switch (key) {
      case "SIZE":
        // Up to 20 digits: anything larger is over every limit anyway and is refused with 552.
        if (value === undefined || !/^[0-9]{1,20}$/.test(value)) return unsupported("Invalid SIZE parameter")
        params.size = Number(value)
        break
      case "BODY":
        if (upper === "BINARYMIME") return unsupported("BINARYMIME not supported")
        if (upper !== "7BIT" && upper !== "8BITMIME") return unsupported("Invalid BODY parameter")
        params.body = upper
        break
      case "SMTPUTF8":
        if (value !== undefined) return unsupported("SMTPUTF8 takes no value")
        params.smtputf8 = true
        break
      case "REQUIRETLS":
        if (value !== undefined) return unsupported("REQUIRETLS takes no value")
        params.requireTls = true
        break
      case "RET":
        if (upper !== "FULL" && upper !== "HDRS") return unsupported("Invalid RET parameter")
        params.ret = upper
        break
      case "ENVID":
        // RFC 3461 4.4: at most 100 characters of xtext.
        if (value === undefined || value.length > 100 || !Xtext.isXtext(value)) return unsupported("Invalid ENVID parameter")
        params.envid = value
        break
      case "AUTH":
        if (value === undefined || (value !== "<>" && !Xtext.isXtext(value))) return unsupported("Invalid AUTH parameter")
        params.auth = value
        break
      default:
        return unsupported(`Unsupported parameter ${Reply.echo(key)}`)
    }
  }
  return { _tag: "Ok", value: params }
}

const notifyValues = new Set(["NEVER", "SUCCESS", "FAILURE", "DELAY"] as const)
type Notify = "NEVER" | "SUCCESS" | "FAILURE" | "DELAY"
const isNotify = (s: string): s is Notify => notifyValues.has(s as Notify)

/** RFC 3461 ORCPT: addr-type ";" xtext, where SMTPUTF8 also allows UTF-8 (RFC 6533). */
const isOrcpt = (value: string, smtputf8: boolean): boolean => {
  const semi = value.indexOf(";")
  if (semi <= 0 || !/^[A-Za-z0-9!#$%&'*+\-/?^_`{|}~.]+$/.test(value.slice(0, semi))) return false
  const xtext = value.slice(semi + 1)
  if (xtext === "") return false
  return Xtext.isXtext(smtputf8 ? xtext.replace(/[^\x00-\x7f]/g, "") : xtext)
}

/** RCPT TO parameters: NOTIFY and ORCPT. */
export const parseRcptParams = (tokens: ReadonlyArray<string>, smtputf8: boolean): Parsed<RcptParams> => {
  const split = splitParams(tokens, smtputf8)
  if (split._tag === "Error") return split
  const params: Mutable<RcptParams> = { raw: split.value }
  for (const [key, value] of Object.entries(split.value)) {
    switch (key) {
      case "NOTIFY": {
        const list = (value ?? "").toUpperCase().split(",")
        const valid = list.every(isNotify) && new Set(list).size === list.length
        // NEVER must stand alone (RFC 3461 4.1).
        if (!valid || (list.includes("NEVER") && list.length > 1)) return unsupported("Invalid NOTIFY parameter")
        params.notify = list.filter(isNotify)
        break
      }
      case "ORCPT":
        if (value === undefined || !isOrcpt(value, smtputf8)) return unsupported("Invalid ORCPT parameter")
        params.orcpt = value
        break
      default:
        return unsupported(`Unsupported parameter ${Reply.echo(key)}`)
    }
  }
  return { _tag: "Ok", value: params }
}

// --- Commands ----------------------------------------------------------------------------------

const ok = (command: Command): ParseResult => ({ _tag: "Ok", command })
const fail = (reply: Reply.Reply): ParseResult => ({ _tag: "Error", reply })
const syntax = (text?: string): ParseResult => fail(Reply.syntax(text))

export const invalidCharacter = Reply.make(500, "5.5.2", "Invalid character in command")
export const nonAsciiAddress = Reply.make(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")

// Bare CR, NUL and other controls have no place in a command and are how injection starts.
const hasControl = (line: string): boolean => /[\x00-\x08\x0a-\x1f\x7f]/.test(line)

/**
 * The words of `s` between spaces, runs of spaces counting as one. Not `split(" ")`, which makes
 * an empty string per blank: a 4 KB run of them cost 170 times an ordinary line.
 */
const words = (s: string): Array<string> => {
  const out: Array<string> = []
  let i = 0
  while (i < s.length) {
    while (s.charCodeAt(i) === 32) i++
    if (i >= s.length) break
    const end = s.indexOf(" ", i)
    out.push(s.slice(i, end === -1 ? s.length : end))
    i = end === -1 ? s.length : end
  }
  return out
}

/** Splits `<path> params` at the `>` that closes the path, honouring quoted local parts. */
const splitPath = (s: string): { readonly path: string; readonly rest: string } | undefined => {
  if (!s.startsWith("<")) return undefined
  let quoted = false
  for (let i = 1; i < s.length; i++) {
    const c = s[i]
    if (quoted) {
      if (c === "\\") i++
      else if (c === "\"") quoted = false
    } else if (c === "\"") quoted = true
    else if (c === ">") return { path: s.slice(0, i + 1), rest: s.slice(i + 1) }
  }
  return undefined
}

type PathArgument =
  | { readonly _tag: "Ok"; readonly path: string; readonly params: ReadonlyArray<string> }
  | { readonly _tag: "Error"; readonly result: ParseResult }

/** Reads `FROM:<path> params` / `TO:<path> params` after the verb. */
const pathArgument = (argument: string, keyword: "FROM:" | "TO:", badPath: Reply.Reply): PathArgument => {
  if (argument.slice(0, keyword.length).toUpperCase() !== keyword) {
    return { _tag: "Error", result: syntax(`Syntax: ${keyword === "FROM:" ? "MAIL FROM:<address>" : "RCPT TO:<address>"}`) }
  }
  let after = argument.slice(keyword.length)
  // Many clients write `MAIL FROM: <a@b>`; one space is unambiguous, so it is tolerated.
  if (after.startsWith(" ")) after = after.slice(1)
  const split = splitPath(after)
  if (split === undefined) return { _tag: "Error", result: fail(badPath) }
  if (split.rest !== "" && !split.rest.startsWith(" ")) return { _tag: "Error", result: syntax() }
  return { _tag: "Ok", path: split.path, params: words(split.rest) }
}

const pathError = (reason: "Syntax" | "NonAscii" | "TooLong", enhanced: string, who: string): ParseResult => {
  switch (reason) {
    case "NonAscii":
      return fail(nonAsciiAddress)
    case "TooLong":
      return fail(Reply.make(501, enhanced, `${who} address too long`))
    case "Syntax":
      return fail(Reply.make(501, enhanced, `Bad ${who.toLowerCase()} address syntax`))
  }
}

const parseMail = (argument: string): ParseResult => {
  const badPath = Reply.make(501, "5.1.7", "Bad sender address syntax")
  const arg = pathArgument(argument, "FROM:", badPath)
  if (arg._tag === "Error") return arg.result
  // The SMTPUTF8 parameter on this very line decides whether the reverse-path may be UTF-8.
  const smtputf8 = arg.params.some((p) => p.toUpperCase() === "SMTPUTF8")
  const path = Address.parsePath(arg.path, { smtputf8, allowNull: true })
  if (path._tag === "Error") return pathError(path.reason, "5.1.7", "Sender")
  const params = parseMailParams(arg.params)
  if (params._tag === "Error") return fail(params.reply)
  return ok({ verb: "MAIL", from: path.mailbox, params: params.value })
}

const parseRcpt = (argument: string, options: ParseOptions): ParseResult => {
  const badPath = Reply.make(501, "5.1.3", "Bad recipient address syntax")
  const arg = pathArgument(argument, "TO:", badPath)
  if (arg._tag === "Error") return arg.result
  const path = Address.parsePath(arg.path, { smtputf8: options.smtputf8, allowNull: false, allowPostmaster: true })
  if (path._tag === "Error") return pathError(path.reason, "5.1.3", "Recipient")
  if (path.mailbox === null) return fail(badPath)
  const params = parseRcptParams(arg.params, options.smtputf8)
  if (params._tag === "Error") return fail(params.reply)
  return ok({ verb: "RCPT", to: path.mailbox, params: params.value })
}

const parseHello = (verb: "EHLO" | "HELO" | "LHLO", argument: string): ParseResult => {
  // The name is not validated further: real clients send `my_pc` and bare IPs; plugins may judge.
  if (argument === "" || /[ \t]/.test(argument)) return syntax(`Syntax: ${verb} hostname`)
  return ok({ verb, domain: argument })
}

/** At most three pieces split at single spaces: enough to tell one or two arguments from more. */
const firstParts = (argument: string): Array<string> => {
  const first = argument.indexOf(" ")
  if (first === -1) return [argument]
  const second = argument.indexOf(" ", first + 1)
  return second === -1
    ? [argument.slice(0, first), argument.slice(first + 1)]
    : [argument.slice(0, first), argument.slice(first + 1, second), argument.slice(second + 1)]
}

const parseBdat = (argument: string): ParseResult => {
  const parts = firstParts(argument)
  const size = parts[0] ?? ""
  if (!/^[0-9]{1,15}$/.test(size) || parts.length > 2) return syntax("Syntax: BDAT chunk-size [LAST]")
  const last = parts[1]
  if (last !== undefined && last.toUpperCase() !== "LAST") return syntax("Syntax: BDAT chunk-size [LAST]")
  return ok({ verb: "BDAT", size: Number(size), last: last !== undefined })
}

const parseAuth = (argument: string): ParseResult => {
  const parts = firstParts(argument)
  const mechanism = parts[0] ?? ""
  // RFC 4422 sasl-mech: 1*20 of upper-case letters, digits, "-" and "_" (case-folded here).
  if (!/^[A-Za-z0-9_-]{1,20}$/.test(mechanism) || parts.length > 2) return syntax("Syntax: AUTH mechanism [initial-response]")
  const initial = parts[1]
  if (initial === "") return syntax("Syntax: AUTH mechanism [initial-response]")
  return ok({
    verb: "AUTH",
    mechanism: mechanism.toUpperCase(),
    // RFC 4954: "=" is an initial response of zero length.
    initialResponse: initial === "=" ? "" : initial
  })
}

const noArgument = (verb: "DATA" | "RSET" | "QUIT" | "STARTTLS", argument: string): ParseResult =>
  argument === "" ? ok({ verb }) : syntax(`Syntax: ${verb} takes no argument`)

/**
 * The line without its trailing spaces and tabs. A loop, not `/[ \t]+$/`: that regex retries from
 * every blank of a run that is not at the end, so a 4 KB NOOP line of blanks then one letter cost
 * ~7-10 ms of CPU (220 times an ordinary line).
 */
export const trimEndBlanks = (line: string): string => {
  let end = line.length
  while (end > 0 && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--
  return end === line.length ? line : line.slice(0, end)
}

/** Parses one command line, given without its line terminator. */
export const parse = (line: string, options: ParseOptions): ParseResult => {
  if (hasControl(line)) return fail(invalidCharacter)
  // Trailing blanks are invisible in logs and harmless; clients that send them are not wrong enough to refuse.
  const trimmed = trimEndBlanks(line)
  const space = trimmed.indexOf(" ")
  const verb = (space === -1 ? trimmed : trimmed.slice(0, space)).toUpperCase()
  const argument = space === -1 ? "" : trimmed.slice(space + 1)
  switch (verb) {
    case "EHLO":
    case "HELO":
    case "LHLO":
      return parseHello(verb, argument)
    case "MAIL":
      return parseMail(argument)
    case "RCPT":
      return parseRcpt(argument, options)
    case "DATA":
    case "RSET":
    case "QUIT":
    case "STARTTLS":
      return noArgument(verb, argument)
    case "NOOP":
      return ok({ verb })
    case "VRFY":
    case "EXPN":
    case "HELP":
      return ok({ verb, argument })
    case "BDAT":
      return parseBdat(argument)
    case "AUTH":
      return parseAuth(argument)
    default:
      return fail(Reply.unknownCommand)
  }
}
