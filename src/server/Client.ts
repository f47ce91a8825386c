/** Who the client is: the socket's peer, or the one a trusted load balancer names in a PROXY header. */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ProxyProtocol from "../protocol/ProxyProtocol.ts"
import * as Socket from "../runtime/Socket.ts"
import * as Cidr from "../util/Cidr.ts"
import type { ServerEnv } from "./Env.ts"

/**
 * Reads a PROXY header from a trusted balancer; what follows it is given back to the socket.
 * A shutdown's drain ends the wait (the drain wakes the socket, and a wake latches: a wait begun
 * after it ends at once): a balancer's connection that never sends its header must not hold the
 * shutdown until its timeout.
 */
const readProxyHeader = Effect.fnUntraced(function*(socket: Socket.SmtpSocket, timeout: Duration.Duration) {
  let buffer: Uint8Array = new Uint8Array(0)
  // One deadline for the whole header: a balancer may not drip-feed it byte by byte.
  const deadline = Socket.now() + Duration.toMillis(timeout)
  for (;;) {
    const chunk = yield* socket.next(deadline, true)
    if (typeof chunk === "string") return undefined
    buffer = buffer.byteLength === 0 ? chunk : Buffer.concat([buffer, chunk])
    const parsed = ProxyProtocol.parse(buffer)
    if (parsed._tag === "Incomplete") continue
    if (parsed._tag === "Invalid") {
      yield* Effect.logWarning(`PROXY header refused from ${socket.remoteAddress}: ${parsed.reason}`)
      return undefined
    }
    socket.unread(buffer.subarray(parsed.consumed))
    return parsed
  }
})

export interface Client {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number
}

/** The client's real address: the socket's, or the PROXY header's when a trusted balancer sent one. */
export const of = Effect.fnUntraced(function*(env: ServerEnv, socket: Socket.SmtpSocket) {
  const direct: Client = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, localAddress: socket.localAddress, localPort: socket.localPort }
  if (!Cidr.matchAny(env.proxies, socket.remoteAddress)) return direct
  const header = yield* readProxyHeader(socket, env.config.limits.greetingTimeout)
  if (header === undefined) return undefined
  if (header.source === undefined) return direct
  return {
    remoteAddress: header.source.address,
    remotePort: header.source.port,
    localAddress: header.destination?.address ?? socket.localAddress,
    localPort: header.destination?.port ?? socket.localPort
  } satisfies Client
})

