/**
 * Postfix's policy delegation protocol (SMTPD_POLICY_README), hand-written: it is a few lines of
 * text, `name=value` per line and an empty line, each way, and no kept library speaks it. This
 * file is pure: the request's text and the answer's meaning; `Client.ts` does the I/O.
 *
 * @example
 * Protocol.encode([["request", "smtpd_access_policy"], ["recipient", "a@b"]]) // "request=smtpd_access_policy\nrecipient=a@b\n\n"
 * Protocol.action("DEFER_IF_PERMIT Greylisted") // { _tag: "Refuse", code: 450, enhanced: "4.7.1", text: "Greylisted" }
 */

/** One attribute of a request, in the order Postfix sends them. */
export type Attribute = readonly [name: string, value: string]

/**
 * A value as it may travel: a line feed would end the attribute and start one the client chose
 * (`\nrecipient=victim@...`), a NUL truncates it in C servers; every control character becomes
 * `?`, as Postfix's own `printable()` does to client-supplied text.
 */
export const value = (text: string): string => text.replace(/[\x00-\x1f\x7f]/g, "?")

export const encode = (attributes: ReadonlyArray<Attribute>): string => {
  let out = ""
  for (const [name, text] of attributes) out += `${name}=${value(text)}\n`
  return `${out}\n`
}

/** Where the answer ends (the index after its empty line), or -1 while it is incomplete. */
export const answerEnd = (text: string): number => {
  if (text.startsWith("\n")) return 1
  const at = text.indexOf("\n\n")
  return at === -1 ? -1 : at + 2
}

/** The `action=` of an answer, or undefined when it has none. */
export const actionOf = (answer: string): string | undefined => {
  for (const line of answer.split("\n")) {
    if (line.startsWith("action=")) return line.slice("action=".length).replace(/\r$/, "")
  }
  return undefined
}

/** What an action asks of the bridge. */
export type Action =
  /** DUNNO, DEFER_IF_REJECT, WARN, INFO: no opinion; later plugins decide. */
  | { readonly _tag: "Continue"; readonly note?: string | undefined }
  /** OK, a number, `permit`: accept this step, as Postfix's OK ends the restriction list. */
  | { readonly _tag: "Accept" }
  /** REJECT, DEFER, DEFER_IF_PERMIT, 4NN/5NN text. */
  | { readonly _tag: "Refuse"; readonly code: number; readonly enhanced: string; readonly text: string }
  /** PREPEND: add this header field, then no opinion. */
  | { readonly _tag: "Prepend"; readonly name: string; readonly value: string }
  /** HOLD, DISCARD, FILTER, REDIRECT, BCC, or a word the bridge does not know. */
  | { readonly _tag: "Unsupported"; readonly action: string }

/** Longest text repeated to the client: a reply line stays within RFC 5321's 512 octets. */
const maxText = 200

/** Printable ASCII only: the text reaches the client in a reply line, so a CR or a NUL must not. */
const printable = (text: string): string => {
  let out = ""
  for (const c of text) {
    if (out.length >= maxText) return `${out}...`
    const code = c.charCodeAt(0)
    out += code >= 0x20 && code <= 0x7e ? c : "?"
  }
  return out
}

const enhancedIn = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/

/** `code`, and the enhanced code the text starts with when it is of the same class, else `fallback`. */
const refuse = (code: number, text: string, fallback: string, defaultText: string): Action => {
  const m = enhancedIn.exec(text)
  const ours = m !== null && m[1] === String(code)[0]
  const rest = ours ? text.slice(m[0].length) : text
  return { _tag: "Refuse", code, enhanced: ours ? `${m[1]}.${m[2]}.${m[3]}` : fallback, text: printable(rest.trim() === "" ? defaultText : rest.trim()) }
}

// RFC 5322 2.2: a field name is printable ASCII but the colon.
const fieldName = /^[\x21-\x39\x3b-\x7e]+$/

const prepend = (text: string): Action => {
  const colon = text.indexOf(":")
  const name = colon > 0 ? text.slice(0, colon) : ""
  const rest = colon > 0 ? text.slice(colon + 1).trim() : ""
  // A CR or NUL in the value would end or cut the header line in the message.
  return fieldName.test(name) && !/[\x00-\x08\x0a-\x1f\x7f]/.test(rest)
    ? { _tag: "Prepend", name, value: rest }
    : { _tag: "Unsupported", action: `PREPEND ${printable(text)}` }
}

/**
 * The meaning of an `action=` value, as Postfix's access(5) gives it for a policy service's
 * answer. Codes are Postfix's defaults: REJECT 554 5.7.1 (`access_map_reject_code`), DEFER and
 * DEFER_IF_PERMIT 450 4.7.1 (`access_map_defer_code`, `defer_code`).
 */
export const action = (raw: string): Action => {
  const trimmed = raw.trim()
  if (/^\d+$/.test(trimmed)) return { _tag: "Accept" }
  const numeric = /^([45]\d\d)(?:\s+(.*))?$/s.exec(trimmed)
  if (numeric !== null) {
    const code = Number(numeric[1])
    return refuse(code, numeric[2] ?? "", code >= 500 ? "5.7.1" : "4.7.1", code >= 500 ? "Access denied" : "Try again later")
  }
  const space = trimmed.search(/\s/)
  const word = (space === -1 ? trimmed : trimmed.slice(0, space)).toUpperCase()
  const text = space === -1 ? "" : trimmed.slice(space + 1).trim()
  switch (word) {
    case "DUNNO":
      return { _tag: "Continue" }
    case "OK":
    case "PERMIT":
      return { _tag: "Accept" }
    case "REJECT":
      return refuse(554, text, "5.7.1", "Access denied")
    case "DEFER":
    case "DEFER_IF_PERMIT":
      return refuse(450, text, "4.7.1", "Try again later")
    // Postfix defers only if a later restriction would reject; in the bridge a later plugin's
    // reject stays a reject, which Postfix too would have said with the other answer.
    case "DEFER_IF_REJECT":
    case "WARN":
    case "INFO":
      return { _tag: "Continue", note: `${word}${text === "" ? "" : ` ${printable(text)}`}` }
    case "PREPEND":
      return prepend(text)
    default:
      return { _tag: "Unsupported", action: printable(trimmed) }
  }
}
