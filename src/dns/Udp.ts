/**
 * A stub resolver over UDP (`node:dgram`, which Bun and Deno implement too): it asks the
 * configured recursive servers and keeps each answer's TTL for the cache. Answers too large for
 * UDP (TC bit) are asked again through `node:dns`, which retries over TCP.
 */
import * as Effect from "effect/Effect"
import * as Dgram from "node:dgram"
import * as NodeDns from "node:dns"
import * as Cidr from "../util/Cidr.ts"
import { DnsError } from "./Dns.ts"
import * as Wire from "./Wire.ts"

export interface Server {
  readonly host: string
  readonly port: number
}

/** What one question yields: records with the TTL to keep them, or a negative answer with its own. */
export type Outcome =
  | { readonly _tag: "Records"; readonly records: ReadonlyArray<Wire.RecordData>; readonly ttl: number }
  | { readonly _tag: "NoRecords"; readonly code: "ENOTFOUND" | "ENODATA"; readonly ttl: number }

export type Lookup = (name: string, type: Wire.RRType) => Effect.Effect<Outcome, DnsError>

/** Without a TTL (negative answer with no SOA, or the `node:dns` fallback), keep answers this long. */
export const DEFAULT_TTL = 300

/** Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address; port 53 by default. */
export const parseServer = (spec: string): Server | undefined => {
  const s = spec.trim()
  const bracket = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(s)
  if (bracket !== null) return withPort(bracket[1]!, bracket[2])
  if (s.split(":").length > 2) return /^[0-9a-fA-F:.]+$/.test(s) ? { host: s, port: 53 } : undefined
  const [host, port] = s.split(":")
  if (host === undefined || !/^[A-Za-z0-9.-]+$/.test(host)) return undefined
  return withPort(host, port)
}

const withPort = (host: string, port: string | undefined): Server | undefined => {
  const n = port === undefined ? 53 : Number(port)
  return Number.isInteger(n) && n > 0 && n < 65536 ? { host, port: n } : undefined
}

/** The system's resolvers (what `node:dns` read from resolv.conf or the OS). */
export const systemServers = (): ReadonlyArray<Server> =>
  NodeDns.getServers().flatMap((s) => {
    const server = parseServer(s)
    return server === undefined ? [] : [server]
  })

const randomId = (): number => crypto.getRandomValues(new Uint16Array(1))[0]!

const temporary = (name: string, type: string, code: string, message: string) =>
  new DnsError({ reason: "Temporary", code, name, rrtype: type, message: `${type} ${name}: ${message}` })

/**
 * The server's address in canonical form: a name is looked up once here, so that the query goes
 * to the very address the answer must then come from.
 */
const addressOf = (server: Server, name: string, type: string): Effect.Effect<string, DnsError> => {
  const literal = Cidr.canonical(server.host)
  if (literal !== undefined) return Effect.succeed(literal)
  return Effect.tryPromise({
    try: () => NodeDns.promises.lookup(server.host, { family: 4 }),
    catch: (e) => temporary(name, type, "ECONNREFUSED", `DNS server ${server.host}: ${e instanceof Error ? e.message : String(e)}`)
  }).pipe(Effect.map((found) => Cidr.canonical(found.address) ?? found.address))
}

/**
 * One UDP exchange: sends the query to `address` and waits for the reply from that address and
 * port with the same id.
 */
const exchange = (server: Server, address: string, name: string, type: Wire.RRType, timeoutMs: number) =>
  Effect.async<Wire.Response, DnsError>((resume) => {
    const id = randomId()
    const socket = Dgram.createSocket(address.includes(":") ? "udp6" : "udp4")
    let done = false
    // Answered once the socket is closed, not before: Deno closes its descriptor later than
    // `close()` returns, and the next lookup of a check (mailauth's lookupsInFlight) must not
    // find it still open. Deno never calls back for a socket that was never bound (its bind
    // failed, EMFILE): then a moment later all the same, not never.
    const finish = (result: Effect.Effect<Wire.Response, DnsError>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      let answered = false
      const answer = () => {
        if (answered) return
        answered = true
        clearTimeout(fallback)
        resume(result)
      }
      const fallback = setTimeout(answer, 100)
      try {
        socket.close(answer)
      } catch {
        // Already closed.
        answer()
      }
    }
    const timer = setTimeout(
      () => finish(Effect.fail(temporary(name, type, "ETIMEOUT", `no answer from ${server.host}:${server.port} in ${timeoutMs} ms`))),
      timeoutMs
    )
    socket.on("error", (e) => finish(Effect.fail(temporary(name, type, "ECONNREFUSED", e.message))))
    socket.on("message", (msg: Uint8Array, rinfo: Dgram.RemoteInfo) => {
      // Replies from elsewhere or for another question are ignored, not trusted (spoofing): the
      // port alone is not enough, every host can send from port 53.
      if (rinfo.port !== server.port || Cidr.canonical(rinfo.address) !== address) return
      let response: Wire.Response
      try {
        response = Wire.decodeResponse(msg)
      } catch {
        return
      }
      if (response.id !== id) return
      if (response.question !== undefined && response.question.name !== Wire.normalizeName(name)) return
      finish(Effect.succeed(response))
    })
    socket.send(Wire.encodeQuery(id, name, type), server.port, address, (e) => {
      if (e) finish(Effect.fail(temporary(name, type, "ECONNREFUSED", e.message)))
    })
    return Effect.sync(() => finish(Effect.never))
  })

const fromTcpFallback = (server: Server, name: string, type: Wire.RRType, timeoutMs: number) =>
  Effect.tryPromise({
    try: async (): Promise<Outcome> => {
      const resolver = new NodeDns.promises.Resolver({ timeout: timeoutMs, tries: 1 })
      resolver.setServers([server.host.includes(":") ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`])
      const records: ReadonlyArray<Wire.RecordData> = type === "TXT"
        ? (await resolver.resolveTxt(name)).map((value) => ({ type, value }))
        : type === "MX"
        ? (await resolver.resolveMx(name)).map((value) => ({ type, value }))
        : (await resolver.resolve(name, type)).map((value) => ({ type, value: String(value) }))
      return { _tag: "Records", records, ttl: DEFAULT_TTL }
    },
    catch: (e) => temporary(name, type, "EBADRESP", `truncated answer, TCP retry failed: ${String(e)}`)
  })

const outcomeOf = (response: Wire.Response, name: string, type: Wire.RRType): Effect.Effect<Outcome, DnsError> => {
  switch (response.rcode) {
    case 0: {
      const records = response.answers.filter((r) => r.data.type === type)
      if (records.length === 0) {
        return Effect.succeed({ _tag: "NoRecords", code: "ENODATA", ttl: response.negativeTtl ?? DEFAULT_TTL })
      }
      // The CNAMEs that led to the records expire too: keep the whole answer no longer than its shortest TTL.
      const ttl = Math.min(...response.answers.map((r) => r.ttl))
      return Effect.succeed({ _tag: "Records", records: records.map((r) => r.data), ttl })
    }
    case 3:
      return Effect.succeed({ _tag: "NoRecords", code: "ENOTFOUND", ttl: response.negativeTtl ?? DEFAULT_TTL })
    case 5:
      return Effect.fail(temporary(name, type, "EREFUSED", "refused"))
    case 2:
      return Effect.fail(temporary(name, type, "ESERVFAIL", "server failure"))
    default:
      return Effect.fail(temporary(name, type, "EBADRESP", `rcode ${response.rcode}`))
  }
}

export interface UdpOptions {
  readonly servers: ReadonlyArray<Server>
  /** Per attempt, in milliseconds. */
  readonly timeoutMs: number
  /** Rounds over the server list. */
  readonly attempts: number
}

/** Asks each server in turn, for `attempts` rounds, until one gives an answer that is not a failure. */
export const lookup = (options: UdpOptions): Lookup => (name, type) => {
  if (!Wire.validName(name)) {
    return Effect.fail(new DnsError({ reason: "Invalid", code: "EBADNAME", name, rrtype: type, message: `${type} ${name}: invalid name` }))
  }
  if (options.servers.length === 0) return Effect.fail(temporary(name, type, "ECONNREFUSED", "no DNS servers configured"))
  const tries = Array.from({ length: options.attempts }, () => options.servers).flat()
  const attempt = (i: number): Effect.Effect<Outcome, DnsError> => {
    const server = tries[i]!
    const once = addressOf(server, name, type).pipe(
      Effect.flatMap((address) => exchange(server, address, name, type, options.timeoutMs)),
      Effect.flatMap((response) =>
        response.truncated ? fromTcpFallback(server, name, type, options.timeoutMs) : outcomeOf(response, name, type)
      )
    )
    return i + 1 < tries.length ? Effect.catchAll(once, () => attempt(i + 1)) : once
  }
  return attempt(0)
}
