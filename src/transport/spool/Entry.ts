/** What the server hands to the spool, and how it becomes a state file and back into a delivery. */
import * as Duration from "effect/Duration"
import type * as Stream from "effect/Stream"
import type { MessageError } from "../../pipeline/Message.ts"
import * as Notes from "../../pipeline/Notes.ts"
import type { Route } from "../../pipeline/Plugin.ts"
import type { SessionInfo, TlsInfo } from "../../pipeline/Session.ts"
import type { Mailbox, MailParams } from "../../protocol/Envelope.ts"
import type * as Record from "./Record.ts"

/**
 * The part of the client's session the spool keeps. A `SessionInfo` fits as it is; its notes
 * are not kept (they are live objects), so a delivery from the spool starts with fresh notes.
 */
export interface SessionSummary {
  readonly id: string
  readonly remoteAddress: string
  readonly remotePort?: number | undefined
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
  readonly hostname?: string | undefined
  readonly helo?: { readonly verb: "EHLO" | "HELO" | "LHLO"; readonly name: string } | undefined
  readonly user?: string | undefined
  readonly authMechanism?: string | undefined
  readonly tls?: TlsInfo | undefined
}

export interface Entry {
  /** The transaction id; it names the files and is the `OutgoingMessage.id` of every attempt. */
  readonly id: string
  /** `null` is the null reverse-path `<>`. */
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
  /** Which transport delivers which recipients. */
  readonly routes: ReadonlyArray<Route>
  /** Size in bytes of `content`. */
  readonly size: number
  /** The final message (CRLF line endings, not dot-stuffed). */
  readonly content: () => Stream.Stream<Uint8Array, MessageError>
  readonly session: SessionSummary
  /**
   * When the first attempt may start; now by default. For recipients that just failed a
   * pass-through attempt and are handed to the spool, so that it does not retry at once.
   */
  readonly delay?: Duration.DurationInput | undefined
}

const summary = (s: SessionSummary): Record.SessionJson => {
  const out: { -readonly [K in keyof Record.SessionJson]: Record.SessionJson[K] } = { id: s.id, remoteAddress: s.remoteAddress }
  if (s.remotePort !== undefined) out.remotePort = s.remotePort
  if (s.localAddress !== undefined) out.localAddress = s.localAddress
  if (s.localPort !== undefined) out.localPort = s.localPort
  if (s.hostname !== undefined) out.hostname = s.hostname
  if (s.helo !== undefined) out.helo = { verb: s.helo.verb, name: s.helo.name }
  if (s.user !== undefined) out.user = s.user
  if (s.authMechanism !== undefined) out.authMechanism = s.authMechanism
  if (s.tls !== undefined) out.tls = { protocol: s.tls.protocol, cipher: s.tls.cipher, mode: s.tls.mode }
  return out
}

/** The initial state of an entry: every recipient pending, due now. */
export const toRecord = (entry: Entry, size: number, now: number): Record.Record => ({
  id: entry.id,
  created: now,
  size,
  mailFrom: entry.mailFrom,
  mailParams: entry.mailParams,
  session: summary(entry.session),
  attempts: 0,
  nextAttempt: entry.delay === undefined ? now : now + Duration.toMillis(Duration.decode(entry.delay)),
  recipients: entry.routes.flatMap((route) =>
    route.recipients.map((recipient) => ({ recipient, transport: route.transport, state: "pending" as const, attempts: 0 }))
  )
})

/** The session as transports expect it, rebuilt from the stored summary with fresh notes. */
export const sessionOf = (stored: Record.SessionJson, hostname: string): SessionInfo => ({
  id: stored.id,
  remoteAddress: stored.remoteAddress,
  remotePort: stored.remotePort ?? 0,
  localAddress: stored.localAddress ?? "",
  localPort: stored.localPort ?? 0,
  hostname: stored.hostname ?? hostname,
  tls: stored.tls,
  helo: stored.helo,
  user: stored.user,
  authMechanism: stored.authMechanism,
  notes: Notes.make()
})
