/**
 * Hook contexts in one line, for a plugin's unit tests: what the bridge would pass, with only the
 * fields a test cares about given. Addresses are written as strings.
 *
 * @example
 * import { Contexts } from "smtp-bridge/testing"
 * const verdict = yield* plugin.rcptTo(Contexts.rcptTo("bob@example.net", { session: { user: "alice" } }))
 */
import * as Stream from "effect/Stream"
import * as Message from "../pipeline/Message.ts"
import * as Notes from "../pipeline/Notes.ts"
import type {
  AuthContext, ConnectContext, DataContext, DeliveredContext, DisconnectContext, HeloContext, MailFromContext, RcptToContext, RouteContext
} from "../pipeline/Plugin.ts"
import type { SessionInfo, TransactionInfo } from "../pipeline/Session.ts"
import type { Mailbox, MailParams, Recipient } from "../protocol/Envelope.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Draft from "../server/Draft.ts"

/** A session as a test describes it: some fields of `SessionInfo`, `user` alone for an authenticated one. */
export type SessionInput = Partial<SessionInfo>

/** A transaction: whichever fields it needs, and recipients as addresses. */
export type TransactionInput = Partial<Omit<TransactionInfo, "mailFrom" | "recipients">> & {
  readonly mailFrom?: string | Mailbox | null
  readonly recipients?: ReadonlyArray<string | Recipient>
}

export interface Over {
  readonly session?: SessionInput | SessionInfo
  readonly transaction?: TransactionInput
}

/** A connected client that said EHLO: 203.0.113.5 to mx.bridge.test:587, no TLS, no AUTH. */
export const session = (over: SessionInput = {}): SessionInfo => ({
  id: "S1",
  remoteAddress: "203.0.113.5",
  remotePort: 50000,
  localAddress: "192.0.2.1",
  localPort: 587,
  hostname: "mx.bridge.test",
  tls: undefined,
  helo: { verb: "EHLO", name: "client.test" },
  user: undefined,
  authMechanism: over.user === undefined ? undefined : "PLAIN",
  notes: Notes.make(),
  ...over
})

/** `alice@example.org` split as the parser splits it (at the last `@`). */
export const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return at < 0 ? { local: address, domain: "", address } : { local: address.slice(0, at), domain: address.slice(at + 1), address }
}

export const recipient = (address: string | Recipient): Recipient =>
  typeof address === "string" ? { mailbox: mailbox(address), params: { raw: {} } } : address

const mailboxOf = (m: string | Mailbox | null): Mailbox | null => (typeof m === "string" ? mailbox(m) : m)

/** A transaction from alice@example.org to bob@example.net, unless told otherwise. */
export const transaction = (over: TransactionInput = {}): TransactionInfo => {
  const { mailFrom, recipients, ...rest } = over
  return {
    id: "T1",
    mailParams: { raw: {} } satisfies MailParams,
    notes: Notes.make(),
    ...rest,
    mailFrom: mailFrom === undefined ? mailbox("alice@example.org") : mailboxOf(mailFrom),
    recipients: (recipients ?? ["bob@example.net"]).map(recipient)
  }
}

const sessionOf = (over: Over): SessionInfo => session(over.session)

export const connect = (over: SessionInput = {}): ConnectContext => ({ session: session(over) })

export const helo = (name = "client.test", over: Over & { readonly verb?: HeloContext["verb"] } = {}): HeloContext => ({
  session: sessionOf(over),
  verb: over.verb ?? "EHLO",
  name
})

export const auth = (
  username: string,
  password: string,
  over: Over & { readonly mechanism?: AuthContext["mechanism"]; readonly authzid?: string } = {}
): AuthContext => ({
  session: session({ helo: { verb: "EHLO", name: "client.test" }, ...over.session }),
  mechanism: over.mechanism ?? "PLAIN",
  username,
  password,
  authzid: over.authzid
})

export const mailFrom = (from: string | null = "alice@example.org", over: Over & { readonly params?: MailParams } = {}): MailFromContext => ({
  session: sessionOf(over),
  from: mailboxOf(from),
  params: over.params ?? { raw: {} }
})

export const rcptTo = (to: string | Recipient = "bob@example.net", over: Over = {}): RcptToContext => ({
  session: sessionOf(over),
  transaction: transaction(over.transaction),
  recipient: recipient(to)
})

/** A stored message as the `data` hook sees it (CRLF line endings; bare LFs are turned into CRLF). */
export const content = (text: string): Message.Content => {
  const crlf = text.replace(/\r?\n/g, "\r\n")
  const bytes = new TextEncoder().encode(crlf)
  // Where the header section ends: the start of the blank line (the whole message when none).
  const blank = crlf.startsWith("\r\n") ? -2 : crlf.indexOf("\r\n\r\n")
  const bodyOffset = blank === -1 ? bytes.byteLength : new TextEncoder().encode(crlf.slice(0, blank + 2)).byteLength
  return {
    size: bytes.byteLength,
    headers: Message.parseHeaders(bytes.slice(0, bodyOffset)),
    bodyOffset,
    stream: (start = 0) => Stream.succeed(bytes.slice(start)),
    // Held in memory, as the server holds a message under its spill threshold.
    inMemory: (start = 0) => [bytes.slice(start)]
  }
}

/** A `data` context whose header edits are collected in `added` and `removed` (field names). */
export interface DataTestContext extends DataContext {
  /** The server's record of every edit (`draft.result()`, `draft.recipients()`, `draft.fate()`). */
  readonly draft: Draft.Draft
  readonly added: Array<{ readonly name: string; readonly value: string }>
  readonly removed: Array<{ readonly name: string; readonly predicate: ((value: string) => boolean) | undefined }>
}

export const data = (text = "Subject: hi\r\n\r\nbody\r\n", over: Over = {}): DataTestContext => {
  const added: DataTestContext["added"] = []
  const removed: DataTestContext["removed"] = []
  const tx = transaction(over.transaction)
  const message = content(text)
  // The full edit API, as the server gives it: header positions, envelope, body, discard.
  const draft = Draft.make(message, tx, { maxRecipients: 100, maxMessageSize: 64 * 1024 * 1024, spillThreshold: 256 * 1024, tempDir: undefined })
  return {
    session: sessionOf(over),
    transaction: tx,
    message,
    addHeader: (name, value) => {
      draft.addHeader(name, value)
      added.push({ name, value })
    },
    removeHeader: (name, predicate) => {
      draft.removeHeader(name, predicate)
      removed.push({ name, predicate })
    },
    edit: draft.edits,
    draft,
    added,
    removed
  }
}

export const route = (text = "Subject: hi\r\n\r\nbody\r\n", over: Over & { readonly transports?: ReadonlyArray<string> } = {}): RouteContext => ({
  session: sessionOf(over),
  transaction: transaction(over.transaction),
  message: content(text),
  transports: over.transports ?? ["default"]
})

/** Every recipient delivered with 250 unless `replies` says otherwise (by address). */
export const delivered = (over: Over & { readonly replies?: Readonly<Record<string, Reply.Reply>>; readonly transport?: string } = {}): DeliveredContext => {
  const transaction_ = transaction(over.transaction)
  return {
    session: sessionOf(over),
    transaction: transaction_,
    results: transaction_.recipients.map((r) => ({
      recipient: r,
      transport: over.transport ?? "default",
      reply: over.replies?.[r.mailbox.address] ?? Reply.make(250, "2.0.0", `Ok: queued as ${transaction_.id}`)
    }))
  }
}

export const disconnect = (over: SessionInput = {}): DisconnectContext => ({ session: session(over) })
