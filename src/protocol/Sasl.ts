/**
 * SASL pieces for AUTH PLAIN (RFC 4616) and AUTH LOGIN: strict base64 and the decoding of the
 * client's responses. The exchange itself (prompts, states) belongs to the session engine.
 *
 * @example
 * Sasl.decodePlain("AHVzZXIAc2VjcmV0") // { authzid: undefined, username: "user", password: "secret" }
 */

/** `334 VXNlcm5hbWU6` ("Username:") */
export const loginUsernamePrompt = "VXNlcm5hbWU6"
/** `334 UGFzc3dvcmQ6` ("Password:") */
export const loginPasswordPrompt = "UGFzc3dvcmQ6"

/** RFC 4954 4: a client cancels the exchange with a line holding only `*` (answered 501 5.7.0). */
export const isCancel = (line: string): boolean => line === "*"

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const VALUES = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) VALUES[ALPHABET.charCodeAt(i)] = i

const value = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  return c < 128 ? VALUES[c]! : -1
}

/**
 * Decodes RFC 4648 base64 strictly: standard alphabet, length a multiple of 4, `=` only as final
 * padding, no whitespace, and the unused bits before the padding zero (RFC 4648 3.5: `QR==` and
 * `QQ==` would otherwise both be "A"). Credentials that decode two ways would make logs and
 * limits lie.
 */
export const decodeBase64 = (text: string): Uint8Array | undefined => {
  if (text.length % 4 !== 0) return undefined
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  const out = new Uint8Array((text.length / 4) * 3 - padding)
  let o = 0
  for (let i = 0; i < text.length; i += 4) {
    const last = i + 4 === text.length
    const a = value(text, i)
    const b = value(text, i + 1)
    const c = last && padding === 2 ? 0 : value(text, i + 2)
    const d = last && padding >= 1 ? 0 : value(text, i + 3)
    if (a < 0 || b < 0 || c < 0 || d < 0) return undefined
    // The bits that padding leaves over must be zero: 4 of `b` before `==`, 2 of `c` before `=`.
    if (last && ((padding === 2 && (b & 0x0f) !== 0) || (padding === 1 && (c & 0x03) !== 0))) return undefined
    const n = (a << 18) | (b << 12) | (c << 6) | d
    out[o++] = n >> 16
    if (o < out.length) out[o++] = (n >> 8) & 0xff
    if (o < out.length) out[o++] = n & 0xff
  }
  return out
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

export interface PlainCredentials {
  /** The identity to act as, when the client asked for one other than its own. */
  readonly authzid: string | undefined
  readonly username: string
  readonly password: string
}

/**
 * Decodes an AUTH PLAIN response, base64 of `authzid NUL authcid NUL passwd` in UTF-8.
 * `undefined` when malformed, or when the user name or password is empty (RFC 4616 requires both).
 */
export const decodePlain = (response: string): PlainCredentials | undefined => {
  const bytes = decodeBase64(response)
  if (bytes === undefined) return undefined
  const text = decodeUtf8(bytes)
  if (text === undefined) return undefined
  const parts = text.split("\0")
  if (parts.length !== 3) return undefined
  const [authzid, username, password] = parts as [string, string, string]
  if (username === "" || password === "") return undefined
  return { authzid: authzid === "" ? undefined : authzid, username, password }
}

/** Decodes one AUTH LOGIN response (user name or password); `undefined` when malformed or holding NUL. */
export const decodeLoginField = (response: string): string | undefined => {
  const bytes = decodeBase64(response)
  if (bytes === undefined) return undefined
  const text = decodeUtf8(bytes)
  return text === undefined || text.includes("\0") ? undefined : text
}

/** Encodes bytes or UTF-8 text as base64, for challenges and for tests. */
export const encodeBase64 = (input: Uint8Array | string): string => {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input
  let out = ""
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0)
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!
    out += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : "="
    out += i + 2 < bytes.length ? ALPHABET[n & 63]! : "="
  }
  return out
}
