/**
 * Relay URLs, as given to `--relay` or in the config file, parsed into a typed `RelayTarget`.
 *
 * | URL | meaning |
 * |---|---|
 * | `smtp://[user:pass@]host[:port]` | SMTP, port 25 by default, STARTTLS when offered (`tls=opportunistic`) |
 * | `smtps://[user:pass@]host[:port]` | SMTP over implicit TLS (RFC 8314), port 465 by default |
 * | `lmtp://host[:port]` | LMTP over TCP, port 24 by default, no TLS unless `tls=` says so |
 * | `lmtp:///path/to/socket` | LMTP over a unix socket (an empty host, then the socket's absolute path) |
 *
 * Query options:
 * - `tls=required|opportunistic|none` (not for `smtps:` or unix sockets). `required` defers the
 *   message (4xx) when the upstream offers no STARTTLS or its certificate does not verify;
 *   `opportunistic` upgrades when STARTTLS is offered and otherwise stays plain, but a failed
 *   handshake or verification is still a failure, never a silent downgrade.
 * - `verify=false` turns certificate verification off (on by default); `verify=rcpt` keeps it on
 *   and asks the upstream about each recipient at RCPT time (plugins/recipient-verify).
 * - `servername=name`: the name sent as SNI and checked against the certificate (default: the host).
 * - `ca=/path/ca.pem`: trust this CA file for the upstream instead of the system's roots.
 *
 * User and password are percent-decoded, so `smtp://me%40example.com:p%3Ass@relay:587` logs in as
 * `me@example.com` with the password `p:ss`.
 *
 * @example
 * Url.parse("smtp://bob:secret@relay.example:587?tls=required")
 * // Either.right({ protocol: "smtp", endpoint: { host: "relay.example", port: 587 }, tls: "required", ... })
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Redact from "../../util/Redact.ts"

export type TlsMode = "implicit" | "required" | "opportunistic" | "none"

export type Endpoint =
  | { readonly host: string; readonly port: number }
  | { readonly path: string }

export interface Credentials {
  readonly user: string
  readonly password: string
}

export interface RelayTarget {
  readonly protocol: "smtp" | "lmtp"
  readonly endpoint: Endpoint
  readonly tls: TlsMode
  /** Verify the upstream's certificate (default true). */
  readonly verify: boolean
  /** `verify=rcpt`: ask the upstream about each recipient at RCPT time (the certificate is verified too). */
  readonly verifyRecipients?: boolean | undefined
  readonly servername?: string | undefined
  /** Path of a PEM CA file to trust instead of the system roots. */
  readonly caFile?: string | undefined
  readonly credentials?: Credentials | undefined
}

export class UrlError extends Data.TaggedError("UrlError")<{
  readonly reason: "Scheme" | "Host" | "Port" | "Path" | "Credentials" | "Query"
  readonly url: string
  readonly message: string
  /** The message without the URL: what is wrong, for errors that name the field themselves. */
  readonly detail: string
}> {}

const defaultPorts = { smtp: 25, smtps: 465, lmtp: 24 } as const

/** Hides the password so that errors and logs never carry it. */
export const redact = (url: string): string => Redact.url(url)

/** The target written back as a URL for logs, without credentials. */
export const describe = (target: RelayTarget): string => {
  if ("path" in target.endpoint) return `lmtp://${target.endpoint.path}`
  const scheme = target.tls === "implicit" ? "smtps" : target.protocol
  const host = target.endpoint.host.includes(":") ? `[${target.endpoint.host}]` : target.endpoint.host
  return `${scheme}://${host}:${target.endpoint.port}`
}

const decode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

interface Query {
  readonly tls?: string
  readonly verify?: string
  readonly servername?: string
  readonly ca?: string
}

const parseQuery = (query: string, fail: (reason: UrlError["reason"], message: string) => UrlError): Either.Either<Query, UrlError> => {
  const out: Record<string, string> = {}
  if (query === "") return Either.right(out)
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=")
    const key = eq === -1 ? pair : pair.slice(0, eq)
    const value = decode(eq === -1 ? "" : pair.slice(eq + 1))
    if (!["tls", "verify", "servername", "ca"].includes(key)) {
      return Either.left(fail("Query", `unknown option "${key}"; the known parameters are tls, verify, servername and ca`))
    }
    if (value === undefined || value === "") return Either.left(fail("Query", `option "${key}" needs a value`))
    if (key in out) return Either.left(fail("Query", `option "${key}" is given twice`))
    out[key] = value
  }
  return Either.right(out)
}

const parseHostPort = (
  authority: string,
  defaultPort: number,
  fail: (reason: UrlError["reason"], message: string) => UrlError
): Either.Either<{ host: string; port: number }, UrlError> => {
  let host: string
  let portText: string | undefined
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]")
    if (close === -1) return Either.left(fail("Host", "IPv6 address is missing its closing ]"))
    host = authority.slice(1, close)
    const rest = authority.slice(close + 1)
    if (rest !== "" && !rest.startsWith(":")) return Either.left(fail("Host", `unexpected "${rest}" after the IPv6 address`))
    portText = rest === "" ? undefined : rest.slice(1)
    if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(":")) return Either.left(fail("Host", `"${host}" is not an IPv6 address`))
  } else {
    const colon = authority.lastIndexOf(":")
    host = colon === -1 ? authority : authority.slice(0, colon)
    portText = colon === -1 ? undefined : authority.slice(colon + 1)
    if (host === "") return Either.left(fail("Host", "the host is missing"))
    if (!/^[A-Za-z0-9.-]+$/.test(host)) return Either.left(fail("Host", `"${host}" is not a valid host name or IPv4 address`))
  }
  if (portText === undefined) return Either.right({ host, port: defaultPort })
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN
  if (!(port >= 1 && port <= 65535)) return Either.left(fail("Port", `"${portText}" is not a port (1-65535)`))
  return Either.right({ host, port })
}

/** Parses a relay URL; the error names the part that is wrong and never repeats the password. */
export const parse = (url: string): Either.Either<RelayTarget, UrlError> => {
  const shown = redact(url)
  const fail = (reason: UrlError["reason"], message: string) =>
    new UrlError({ reason, url: shown, message: `relay URL ${shown}: ${message}`, detail: message })
  const colon = url.indexOf(":")
  const scheme = colon === -1 ? "" : url.slice(0, colon).toLowerCase()
  let rest = url.slice(colon + 1)
  // A password with an unencoded "/", "?" or "#" would be cut into a host, a path or a query
  // below, and those pieces named in the error: refuse it before anything is split.
  const lastAt = rest.lastIndexOf("@")
  if (rest.startsWith("//") && !rest.startsWith("///") && lastAt !== -1 && /[/?#]/.test(rest.slice(2, lastAt))) {
    return Either.left(fail("Credentials", "the user name or password holds a \"/\", \"?\" or \"#\": percent-encode it (%2F, %3F, %23; %40 for @, %25 for %)"))
  }
  const hash = rest.indexOf("#")
  if (hash !== -1) return Either.left(fail("Query", "a #fragment has no meaning here"))
  const q = rest.indexOf("?")
  const queryText = q === -1 ? "" : rest.slice(q + 1)
  rest = q === -1 ? rest : rest.slice(0, q)
  const query = parseQuery(queryText, fail)
  if (Either.isLeft(query)) return Either.left(query.left)
  const { ca, servername } = query.right
  const verifyText = query.right.verify
  if (verifyText !== undefined && verifyText !== "true" && verifyText !== "false" && verifyText !== "rcpt") {
    return Either.left(fail("Query", `verify must be true, false or rcpt, not "${verifyText}"`))
  }
  const verify = verifyText !== "false"
  const verifyRecipients = verifyText === "rcpt"

  if (scheme !== "smtp" && scheme !== "smtps" && scheme !== "lmtp") {
    return Either.left(fail("Scheme", `"${scheme || url}" is not one of smtp://, smtps://, lmtp://`))
  }
  if (!rest.startsWith("//")) return Either.left(fail("Host", `expected ${scheme}://host`))
  rest = rest.slice(2)
  if (rest.startsWith("/")) {
    const path = decode(rest)
    if (scheme !== "lmtp" || path === undefined) {
      return Either.left(fail("Host", "the host is missing (only lmtp:///path names a unix socket)"))
    }
    if (query.right.tls !== undefined && query.right.tls !== "none") {
      return Either.left(fail("Query", "TLS over a unix socket is not supported"))
    }
    return Either.right({ protocol: "lmtp", endpoint: { path }, tls: "none", verify, verifyRecipients, servername, caFile: ca })
  }
  const slash = rest.indexOf("/")
  if (slash !== -1) {
    if (rest.slice(slash) !== "/") return Either.left(fail("Path", `unexpected path "${rest.slice(slash)}"`))
    rest = rest.slice(0, slash)
  }
  const at = rest.lastIndexOf("@")
  let credentials: Credentials | undefined
  if (at !== -1) {
    const userinfo = rest.slice(0, at)
    const sep = userinfo.indexOf(":")
    const user = decode(sep === -1 ? userinfo : userinfo.slice(0, sep))
    const password = sep === -1 ? undefined : decode(userinfo.slice(sep + 1))
    if (user === undefined || password === undefined || user === "") {
      return Either.left(fail("Credentials", "credentials must be user:password, percent-encoded"))
    }
    credentials = { user, password }
    rest = rest.slice(at + 1)
  }
  const hostPort = parseHostPort(rest, defaultPorts[scheme], fail)
  if (Either.isLeft(hostPort)) return Either.left(hostPort.left)

  let tls: TlsMode
  if (scheme === "smtps") {
    if (query.right.tls !== undefined) return Either.left(fail("Query", "smtps:// is always TLS; tls= does not apply"))
    tls = "implicit"
  } else {
    const given = query.right.tls ?? (scheme === "smtp" ? "opportunistic" : "none")
    if (given !== "required" && given !== "opportunistic" && given !== "none") {
      return Either.left(fail("Query", `the tls parameter must be required, opportunistic or none, not "${given}"`))
    }
    tls = given
  }
  return Either.right({
    protocol: scheme === "lmtp" ? "lmtp" : "smtp",
    endpoint: hostPort.right,
    tls,
    verify,
    verifyRecipients,
    servername,
    caFile: ca,
    credentials
  })
}
