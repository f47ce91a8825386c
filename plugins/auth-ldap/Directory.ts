/**
 * The LDAP side of auth-ldap: a small pool of connections (ldapts clients), each serving one
 * check at a time, since a bind changes who the whole connection is. A check binds as the
 * service account (or anonymously), searches the user, then binds as the found entry with the
 * given password (RFC 4513 §5.1.3 "name/password" authentication); the next check on that
 * connection binds as the service account again.
 *
 * ldapts reconnects by itself when an operation finds its socket closed, and such a connection
 * would be plain even when it was upgraded with STARTTLS. Every call is therefore made right
 * after a synchronous `isConnected` check (ldapts decides to reconnect synchronously when the
 * call starts, so no socket event can come in between): a connection that dropped is thrown
 * away, never silently redialled, and a password never goes out over a downgraded connection.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { Client, Filter, InvalidCredentialsError, ResultCodeError } from "ldapts"
import type { SearchOptions } from "ldapts"

export interface Settings {
  readonly url: string
  readonly base: string
  readonly filter: string
  readonly scope: "sub" | "one"
  readonly service: { readonly dn: string; readonly password: string } | undefined
  readonly startTls: boolean
  readonly ca: string | undefined
  readonly senderAttributes: ReadonlyArray<string>
  readonly poolSize: number
  readonly connectTimeoutMs: number
  readonly timeoutMs: number
}

export type Outcome =
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Ambiguous"; readonly count: number }
  | { readonly _tag: "Invalid"; readonly dn: string }
  | { readonly _tag: "Valid"; readonly dn: string; readonly senders: ReadonlyArray<string> }

/** `template` with every `%s` replaced by `value` escaped per RFC 4515 §3 (split/join: no `$&` surprises of `String.replace`). */
export const filterFor = (template: string, value: string): string => template.split("%s").join(Filter.escape(value))

interface Connection {
  readonly client: Client
  /** Whether the connection is bound as the service account (or anonymous) rather than as a user. */
  asService: boolean
  fresh: boolean
}

/**
 * The directory could not decide: `Unreachable` (no connection, TLS refused), `Closed` (the
 * connection dropped), `Server` (an LDAP error result, such as a refused service bind),
 * `Timeout` (no answer in time). Each gives 454 4.7.0.
 */
export class LdapError extends Schema.TaggedError<LdapError>()("LdapError", {
  reason: Schema.Literal("Unreachable", "Closed", "Server", "Timeout"),
  message: Schema.String
}) {}

class Dropped extends Error {}

const toLdapError = (cause: unknown): LdapError => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (cause instanceof Dropped) return new LdapError({ reason: "Closed", message })
  if (cause instanceof ResultCodeError) return new LdapError({ reason: "Server", message: `${message} (LDAP result ${cause.code})` })
  return new LdapError({ reason: "Unreachable", message })
}

/**
 * Whether the connection is still up. ldapts (9.2) watches only the socket it connected, so after
 * STARTTLS its `isConnected` stays true when the server closes the connection (an idle timeout,
 * a restart) and the next request waits for its timeout on a dead socket: the TLS socket (a
 * private field of the client) is looked at too.
 */
const alive = (connection: Connection): boolean => {
  const socket = (connection.client as unknown as { readonly socket?: { readonly destroyed?: boolean } }).socket
  return connection.client.isConnected && socket?.destroyed !== true
}

/** Runs `call` only on a connection that is still up (see the module comment). */
const onLive = <A>(connection: Connection, call: () => Promise<A>): Promise<A> => {
  if (!connection.fresh && !alive(connection)) return Promise.reject(new Dropped("the LDAP connection was closed"))
  connection.fresh = false
  return call()
}

const hostOf = (url: string): string => new URL(url).hostname.replace(/^\[|\]$/g, "")

/** The host to verify the certificate against; SNI only for a name (RFC 6066 §3 forbids an address there). */
const tlsTarget = (url: string) => {
  const host = hostOf(url)
  return /^[\d.]+$/.test(host) || host.includes(":") ? { host } : { host, servername: host }
}

/** Attribute values as strings, the attribute's name compared case-insensitively (RFC 4512 §2.5). */
const valuesOf = (entry: Record<string, unknown>, names: ReadonlyArray<string>): ReadonlyArray<string> => {
  const wanted = new Set(names.map((n) => n.toLowerCase()))
  const out: Array<string> = []
  for (const [name, value] of Object.entries(entry)) {
    if (!wanted.has(name.toLowerCase())) continue
    for (const v of Array.isArray(value) ? value : [value]) out.push(typeof v === "string" ? v : String(v))
  }
  return out
}

export interface Directory {
  /** Checks `password` for the entry `username` finds; fails on a server that is down, slow or answers an error. */
  readonly check: (username: string, password: string) => Effect.Effect<Outcome, LdapError>
}

/** The pool lives in the scope: closing it unbinds every idle connection. */
export const make = (settings: Settings) =>
  Effect.gen(function*() {
    const idle: Array<Connection> = []
    const permits = yield* Effect.makeSemaphore(settings.poolSize)
    const tlsOptions = settings.ca === undefined ? {} : { ca: settings.ca }

    const open = (): Connection => ({
      client: new Client({
        url: settings.url,
        connectTimeout: settings.connectTimeoutMs,
        timeout: settings.timeoutMs,
        // ldapts speaks TLS from the first byte whenever tlsOptions are given, even to ldap://.
        ...(settings.url.toLowerCase().startsWith("ldaps:") ? { tlsOptions: { ...tlsOptions, ...tlsTarget(settings.url) } } : {})
      }),
      asService: false,
      fresh: true
    })
    const close = (connection: Connection) => void connection.client.unbind().catch(() => undefined)
    yield* Effect.addFinalizer(() => Effect.sync(() => idle.splice(0).forEach(close)))

    // An idle connection the server closed meanwhile (its idle timeout, a restart) is dropped here
    // rather than failing the check it would be given to.
    const take = (): Connection | undefined => {
      for (let connection = idle.pop(); connection !== undefined; connection = idle.pop()) {
        if (alive(connection)) return connection
        close(connection)
      }
      return undefined
    }

    const run = async (connection: Connection, username: string, password: string): Promise<Outcome> => {
      const { client } = connection
      if (connection.fresh && settings.startTls) {
        connection.fresh = false
        await client.startTLS({ ...tlsOptions, ...tlsTarget(settings.url) })
      }
      if (!connection.asService) {
        // An empty DN and password is the anonymous simple bind (RFC 4513 §5.1.1).
        await onLive(connection, () => client.bind(settings.service?.dn ?? "", settings.service?.password ?? ""))
        connection.asService = true
      }
      const options: SearchOptions = {
        scope: settings.scope,
        filter: filterFor(settings.filter, username),
        attributes: [...settings.senderAttributes],
        // Two are enough to know the filter is ambiguous.
        sizeLimit: 2
      }
      const { searchEntries } = await onLive(connection, () => client.search(settings.base, options))
      if (searchEntries.length === 0) return { _tag: "Unknown" }
      if (searchEntries.length > 1) return { _tag: "Ambiguous", count: searchEntries.length }
      const entry = searchEntries[0]!
      connection.asService = false
      try {
        await onLive(connection, () => client.bind(entry.dn, password))
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return { _tag: "Invalid", dn: entry.dn }
        throw error
      }
      return { _tag: "Valid", dn: entry.dn, senders: valuesOf(entry, settings.senderAttributes) }
    }

    const check = (username: string, password: string): Effect.Effect<Outcome, LdapError> =>
      permits.withPermits(1)(
        Effect.acquireUseRelease(
          Effect.sync(() => take() ?? open()),
          (connection) =>
            Effect.tryPromise({
              try: () => run(connection, username, password),
              catch: toLdapError
            }),
          // Kept only after a check that ended normally: after an error, a timeout or an
          // interruption its state (a half-done bind, an answer still coming) is unknown.
          (connection, exit) =>
            Effect.sync(() => Exit.isSuccess(exit) && alive(connection) ? void idle.push(connection) : close(connection))
        )
      )

    return { check } satisfies Directory
  })
