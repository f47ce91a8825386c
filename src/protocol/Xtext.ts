/**
 * RFC 3461 section 4 xtext, the encoding of the DSN parameters ENVID and ORCPT and of the
 * RFC 4954 AUTH= parameter.
 *
 * @example
 * Xtext.encode("a+b=c") // "a+2Bb+3Dc"
 * Xtext.decode("a+2Bb") // "a+b"
 */

const PLUS = 0x2b
const EQUALS = 0x3d

const isHex = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)

/**
 * True when `text` is well-formed xtext: printable ASCII except `+` and `=`, and `+XX` hex
 * escapes. Lower-case hex digits are accepted because rejecting them would only punish clients
 * whose intent is unambiguous.
 */
export const isXtext = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === PLUS) {
      if (i + 2 >= text.length || !isHex(text.charCodeAt(i + 1)) || !isHex(text.charCodeAt(i + 2))) return false
      i += 2
    } else if (c < 0x21 || c > 0x7e || c === EQUALS) {
      return false
    }
  }
  return true
}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** Decodes xtext; `undefined` when it is not well-formed. The octets are read as UTF-8. */
export const decode = (text: string): string | undefined => {
  if (!isXtext(text)) return undefined
  const bytes: Array<number> = []
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === PLUS) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      bytes.push(text.charCodeAt(i))
    }
  }
  return decoder.decode(Uint8Array.from(bytes))
}

/** Encodes text as xtext: UTF-8 octets outside 0x21-0x7e, `+` and `=` become `+XX`. */
export const encode = (text: string): string => {
  let out = ""
  for (const c of encoder.encode(text)) {
    out += c < 0x21 || c > 0x7e || c === PLUS || c === EQUALS
      ? "+" + c.toString(16).toUpperCase().padStart(2, "0")
      : String.fromCharCode(c)
  }
  return out
}
