/**
 * SMTP replies with RFC 3463 enhanced status codes.
 *
 * @example
 * Reply.format(Reply.make(250, "2.1.0", "Ok")) // "250 2.1.0 Ok\r\n"
 */
export interface Reply {
  readonly code: number
  /** RFC 3463 enhanced status code (`x.y.z`); omitted in the greeting and EHLO replies. */
  readonly enhanced?: string | undefined
  readonly lines: ReadonlyArray<string>
}

export const make = (code: number, enhanced: string | undefined, text: string | ReadonlyArray<string>): Reply => ({
  code,
  enhanced,
  lines: typeof text === "string" ? [text] : text
})

/** Replies never carry bare CR/LF from plugin text: they would inject a reply. */
const clean = (s: string): string => s.replace(/[\r\n]+/g, " ")

/** How many characters of a client's text a reply repeats. */
export const echoLimit = 64

/**
 * Client text fit to repeat in a reply: printable ASCII only (each other character, UTF-8 or a
 * control, becomes `?`), at most `max` characters, then `...`. A name or parameter echoed whole
 * made a reply line longer than RFC 5321's 512 octets and carried non-ASCII bytes to the client.
 *
 * @example
 * Reply.echo("bad\u00ffname") // "bad?name"
 */
export const echo = (text: string, max: number = echoLimit): string => {
  let out = ""
  for (const c of text) {
    if (out.length >= max) return `${out}...`
    const code = c.charCodeAt(0)
    out += code >= 0x20 && code <= 0x7e ? c : "?"
  }
  return out
}

/** Encodes a reply as one or more CRLF-terminated lines, every line prefixed with the enhanced code. */
export const format = (reply: Reply): string => {
  const lines = reply.lines.length === 0 ? [""] : reply.lines
  const prefix = reply.enhanced ? `${reply.enhanced} ` : ""
  let out = ""
  for (let i = 0; i < lines.length; i++) {
    const sep = i === lines.length - 1 ? " " : "-"
    out += `${reply.code}${sep}${prefix}${clean(lines[i]!)}\r\n`
  }
  return out
}

export const isPositive = (reply: Reply): boolean => reply.code < 400
export const isTransient = (reply: Reply): boolean => reply.code >= 400 && reply.code < 500
export const isPermanent = (reply: Reply): boolean => reply.code >= 500

// The replies DESIGN.md section 3 fixes, in one place.
export const unknownCommand = make(500, "5.5.2", "Command unrecognized")
export const lineTooLong = make(500, "5.5.2", "Line too long")
export const syntax = (text = "Syntax error in parameters or arguments") => make(501, "5.5.4", text)
export const badSequence = (text = "Bad sequence of commands") => make(503, "5.5.1", text)
export const authRequired = make(530, "5.7.0", "Authentication required")
export const badCredentials = make(535, "5.7.8", "Authentication credentials invalid")
export const encryptionRequired = make(538, "5.7.11", "Encryption required for requested authentication mechanism")
export const relayDenied = make(554, "5.7.1", "Relay access denied")
export const tooBig = make(552, "5.3.4", "Message size exceeds fixed maximum message size")
export const tooManyRecipients = make(452, "4.5.3", "Too many recipients")
export const timeout = make(421, "4.4.2", "Timeout, closing connection")
export const shuttingDown = make(421, "4.3.2", "Service shutting down, closing connection")
export const pluginFailure = make(451, "4.3.0", "Temporary failure, please try again later")
