/**
 * The one place that decides what of a URL or a config value may be shown in an error, a log
 * line, the start-up line or `check-config` output.
 *
 * URLs (the WHATWG parser does the parsing; the cuts below come first because a password with
 * an unencoded `/`, `?` or `#` makes the parser read it as a host, port or path):
 * - userinfo: everything between `://` and the LAST `@` becomes `****` (user names are API keys
 *   often enough, and a password may itself hold `@`). A URL with `@` only in its query is shown
 *   with too little rather than too much.
 * - query: every value becomes `****` (keys stay, so the reader sees which options were given),
 *   except the relay URL's own settings (`tls`, `verify`, `servername`, `ca`) on smtp/smtps/lmtp.
 * - path: on http(s) URLs a non-empty path is shown as `/****`, since webhook tokens often live in
 *   the path (`/hooks/T0/B0/XXXX`); other schemes keep it (an LMTP socket path is no secret).
 * - fragment: `#****`.
 *
 * @example
 * Redact.url("https://bot:p/a?s@hooks.example/T0/x?token=abc") // "https://****@hooks.example/****?token=****"
 */

const publicQueryKeys: ReadonlySet<string> = new Set(["tls", "verify", "servername", "ca"])
const relaySchemes: ReadonlySet<string> = new Set(["smtp", "smtps", "lmtp"])

/** Shown instead of a secret. */
export const hidden = "(hidden)"

const query = (scheme: string, search: string): string => {
  if (search === "" || search === "?") return ""
  const pairs = search.slice(1).split("&").map((pair) => {
    const eq = pair.indexOf("=")
    if (eq === -1) return "****"
    const key = pair.slice(0, eq)
    return relaySchemes.has(scheme) && publicQueryKeys.has(key) ? pair : `${key}=****`
  })
  return `?${pairs.join("&")}`
}

/** What of `text` (a URL) may be shown; see the module comment for the rules. */
export const url = (text: string): string => {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([\s\S]*)$/.exec(text)
  if (m === null) {
    // Not a URL: still never show what could be the userinfo of a scheme-less "user:pass@host".
    return /^[^@\s]*:[^@\s]*@/.test(text) ? `****${text.slice(text.lastIndexOf("@"))}` : text
  }
  const scheme = m[1]!.toLowerCase()
  let rest = m[2]!
  const at = rest.lastIndexOf("@")
  const userinfo = at === -1 ? "" : "****@"
  if (at !== -1) rest = rest.slice(at + 1)
  let host: string
  let path: string
  let search: string
  let fragment: string
  try {
    const parsed = new URL(`${scheme}://${rest}`)
    host = parsed.host
    path = parsed.pathname
    search = parsed.search
    fragment = parsed.hash
  } catch {
    // The parser refused it (a bad port, a space): cut it by hand, and show the host only if it
    // looks like one.
    const parts = /^([^/?#]*)([^?#]*)(\?[^#]*)?(#[\s\S]*)?$/.exec(rest)!
    host = /^[A-Za-z0-9.\-[\]:]*$/.test(parts[1]!) ? parts[1]! : "****"
    path = parts[2]!
    search = parts[3] ?? ""
    fragment = parts[4] ?? ""
  }
  // The parser adds "/" to an http URL without a path: show the URL as it was written.
  const written = /^[^/?#]*\//.test(rest)
  const shownPath = !written ? "" : (scheme === "http" || scheme === "https") && path !== "/" ? "/****" : path
  return `${scheme}://${userinfo}${host}${shownPath}${query(scheme, search)}${fragment === "" ? "" : "#****"}`
}

/**
 * Config fields whose values are secrets wherever they appear: matched on the last segment of the
 * dotted path (`transports.api.secret`, `webhookSecret`, `adminToken`), and anything under a
 * `headers` object (an Authorization header, a collector's API key).
 */
const secretField = /(?:^|\.)(?:[A-Za-z]*secret|[A-Za-z]*password|pass|[A-Za-z]*token|apiKey|[A-Za-z]*credentials?)$/i
const underHeaders = /(?:^|\.)headers(?:\.|\[|$)/
/** Fields that hold a URL: a value there that is not one may be a token pasted in the wrong place. */
const urlField = /(?:^|\.)(?:relay|webhook|url|otlpEndpoint|redis)$/
const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//

export const isSecretField = (field: string): boolean => secretField.test(field) || underHeaders.test(field)

/**
 * A config value as it may appear in an error: secret fields hidden whatever their type, URLs
 * through `url`, nested objects and arrays walked (a secret in the wrong place stays hidden).
 */
export const value = (field: string, got: unknown): unknown => {
  if (got === undefined) return got
  if (isSecretField(field)) return hidden
  if (typeof got === "string") {
    if (hasScheme.test(got)) return url(got)
    // A bare host:port is shown (the user forgot the scheme); anything else could be a token.
    if (urlField.test(field)) return /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/.test(got) ? got : "(hidden: not a URL)"
    return got.includes("@") ? url(got) : got
  }
  if (Array.isArray(got)) return got.map((item, i) => value(`${field}[${i}]`, item))
  if (typeof got === "object" && got !== null && Object.getPrototypeOf(got) === Object.prototype) {
    return Object.fromEntries(Object.entries(got).map(([k, v]) => [k, value(`${field}.${k}`, v)]))
  }
  return got
}
