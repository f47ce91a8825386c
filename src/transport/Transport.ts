/**
 * The delivery port: every transport (Maildir, SMTP/LMTP relay, webhook) implements it.
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { Envelope, Recipient } from "../protocol/Envelope.ts"
import type { Reply } from "../protocol/Reply.ts"
import type { MessageError } from "../pipeline/Message.ts"
import type { SessionInfo } from "../pipeline/Session.ts"

export interface OutgoingMessage {
  /** The transaction id (`queued as`). */
  readonly id: string
  /** The envelope; `recipients` holds only those routed to this transport. */
  readonly envelope: Envelope
  readonly session: SessionInfo
  /** Size in bytes of `content`. */
  readonly size: number
  /** The final message (CRLF line endings, not dot-stuffed), re-readable. */
  readonly content: () => Stream.Stream<Uint8Array, MessageError>
  /**
   * The same bytes as `content`, as chunks, when the message is held in memory (`undefined`
   * otherwise): a transport may then write it at once instead of running the stream.
   */
  readonly inMemory?: (() => ReadonlyArray<Uint8Array> | undefined) | undefined
}

/** The transport's answer for each recipient it was given. */
export interface DeliveryReport {
  readonly recipients: ReadonlyArray<{ readonly recipient: Recipient; readonly reply: Reply }>
}

export class TransportError extends Data.TaggedError("TransportError")<{
  readonly transport: string
  readonly reason: "Unreachable" | "Timeout" | "Protocol" | "Storage" | "Rejected"
  readonly message: string
  /** The upstream's reply, when there was one; its class decides 4xx or 5xx for the client. */
  readonly reply?: Reply | undefined
}> {}

export interface Transport {
  readonly name: string
  /** Where it delivers, for logs: `smtp://host:port`, a webhook's origin, a Maildir's path; never credentials. */
  readonly upstream?: string | undefined
  readonly deliver: (message: OutgoingMessage) => Effect.Effect<DeliveryReport, TransportError>
}
