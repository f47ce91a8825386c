/**
 * The client messages of OAUTHBEARER (RFC 7628 3.1) and XOAUTH2 (Google's, the same idea without
 * the GS2 header), decoded from their base64, and the error challenges the server sends back.
 * Pure: no I/O, nothing kept.
 *
 * @example
 * Messages.parse("OAUTHBEARER", Buffer.from("n,a=user@example.com,\x01auth=Bearer abc\x01\x01").toString("base64"))
 * // { _tag: "Bearer", user: "user@example.com", token: "abc" }
 */

export type Parsed =
  | { readonly _tag: "Bearer"; readonly user: string | undefined; readonly token: string }
  | { readonly _tag: "Malformed"; readonly why: string }

const utf8 = new TextDecoder("utf-8", { fatal: true })

const decode = (base64: string): string | undefined => {
  try {
    return utf8.decode(Buffer.from(base64, "base64"))
  } catch {
    return undefined
  }
}

/** RFC 5801's saslname: `=2C` is a comma, `=3D` an equals sign; any other `=` is malformed. */
const saslname = (text: string): string | undefined => (/=(?!2C|3D)/.test(text) ? undefined : text.replace(/=2C/g, ",").replace(/=3D/g, "="))

/** `key=value` pairs separated by ^A, ending with ^A^A (RFC 7628 3.1 kvpairs). */
const pairs = (text: string): Map<string, string> | undefined => {
  if (!text.endsWith("\x01\x01")) return undefined
  const map = new Map<string, string>()
  for (const pair of text.slice(0, -2).split("\x01")) {
    const eq = pair.indexOf("=")
    if (eq <= 0) return undefined
    const key = pair.slice(0, eq)
    if (map.has(key)) return undefined
    map.set(key, pair.slice(eq + 1))
  }
  return map
}

/** `Bearer <token>` (RFC 6750 2.1: the scheme is case-insensitive; the token is b64token). */
const bearer = (auth: string | undefined): string | undefined => {
  const match = auth === undefined ? null : /^bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(auth)
  return match === null ? undefined : match[1]
}

const parseOauthbearer = (text: string): Parsed => {
  // gs2-header: "n," or "y," (no channel binding; "p=" asks for one, which SMTP has not), then an optional "a=authzid", then ",".
  const comma = text.indexOf(",", 2)
  if (!/^[ny],/.test(text) || comma === -1 || text[comma + 1] !== "\x01") return { _tag: "Malformed", why: "not an RFC 7628 GS2 header" }
  const authzid = text.slice(2, comma)
  let user: string | undefined
  if (authzid !== "") {
    if (!authzid.startsWith("a=")) return { _tag: "Malformed", why: "not an RFC 7628 GS2 header" }
    user = saslname(authzid.slice(2))
    if (user === undefined || user === "") return { _tag: "Malformed", why: "a bad authzid" }
  }
  // The pairs start after the ^A that ends the header.
  const kv = pairs(text.slice(comma + 2))
  if (kv === undefined) return { _tag: "Malformed", why: "not ^A-separated key=value pairs" }
  const token = bearer(kv.get("auth"))
  return token === undefined ? { _tag: "Malformed", why: "no auth=Bearer <token>" } : { _tag: "Bearer", user, token }
}

const parseXoauth2 = (text: string): Parsed => {
  const kv = pairs(text)
  if (kv === undefined) return { _tag: "Malformed", why: "not ^A-separated key=value pairs" }
  const user = kv.get("user")
  const token = bearer(kv.get("auth"))
  if (user === undefined || user === "") return { _tag: "Malformed", why: "no user=" }
  return token === undefined ? { _tag: "Malformed", why: "no auth=Bearer <token>" } : { _tag: "Bearer", user, token }
}

/** The client's message of `mechanism`, from the base64 the bridge received. */
export const parse = (mechanism: "OAUTHBEARER" | "XOAUTH2", base64: string): Parsed => {
  const text = decode(base64)
  if (text === undefined) return { _tag: "Malformed", why: "not UTF-8" }
  return mechanism === "OAUTHBEARER" ? parseOauthbearer(text) : parseXoauth2(text)
}

/**
 * The error challenge (RFC 7628 3.2.2 for OAUTHBEARER; XOAUTH2 has Google's `"status":"401"`),
 * base64: the client answers it with a dummy response, then gets 535 5.7.8.
 */
export const errorChallenge = (mechanism: "OAUTHBEARER" | "XOAUTH2"): string =>
  Buffer.from(JSON.stringify(mechanism === "OAUTHBEARER" ? { status: "invalid_token", schemes: "bearer" } : { status: "401", schemes: "bearer" }), "utf8")
    .toString("base64")
