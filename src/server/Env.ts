/** What every connection of one server generation shares. */
import type { BridgeConfig } from "../config/Config.ts"
import type { Pipeline } from "../pipeline/Pipeline.ts"
import type { SecureContext } from "../runtime/Socket.ts"
import type * as Spool from "../transport/Spool.ts"
import type { Transport } from "../transport/Transport.ts"
import type * as Cidr from "../util/Cidr.ts"

export interface ServerEnv {
  readonly config: BridgeConfig
  readonly pipeline: Pipeline
  readonly transports: ReadonlyMap<string, Transport>
  /** The durable queue, when configured: messages are enqueued before the 250. */
  readonly spool: Spool.Spool | undefined
  /** The current TLS context (reloadable), or undefined when TLS is not configured. */
  readonly tls: () => SecureContext | undefined
  readonly isDraining: () => boolean
  /** Load balancers whose connections start with a PROXY header. */
  readonly proxies: ReadonlyArray<Cidr.Cidr>
  /**
   * Counts a connection from this client address, or says which limit refuses it:
   * `maxConnectionsPerIp` (`address`) or `maxConnectionsPerNetwork` (`network`).
   */
  readonly admit: (ip: string) => "admitted" | "address" | "network"
  readonly release: (ip: string) => void
}
