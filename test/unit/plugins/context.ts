/**
 * Hand-built hook contexts for plugin unit tests: what the bridge would pass, with only the
 * fields a test cares about overridden.
 */
import { Stream } from "effect"
import { Message, Notes } from "../../../src/index.ts"
import type { DataContext, Mailbox, MailParams, Recipient, SessionInfo, TransactionInfo } from "../../../src/index.ts"
import * as Draft from "../../../src/server/Draft.ts"

export const session = (overrides: Partial<SessionInfo> = {}): SessionInfo => ({
  id: "S1",
  remoteAddress: "203.0.113.5",
  remotePort: 50000,
  localAddress: "192.0.2.1",
  localPort: 587,
  hostname: "mx.bridge.test",
  tls: undefined,
  helo: { verb: "EHLO", name: "client.test" },
  user: undefined,
  authMechanism: undefined,
  notes: Notes.make(),
  ...overrides
})

export const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return { local: address.slice(0, at), domain: address.slice(at + 1), address }
}

export const recipient = (address: string): Recipient => ({ mailbox: mailbox(address), params: { raw: {} } })

export const transaction = (overrides: Partial<TransactionInfo> = {}): TransactionInfo => ({
  id: "T1",
  mailFrom: mailbox("alice@example.org"),
  mailParams: { raw: {} } satisfies MailParams,
  recipients: [recipient("bob@example.net")],
  notes: Notes.make(),
  ...overrides
})

/** A `data` context over a small message; `added` collects the headers the hook adds. */
export const data = (s: SessionInfo, t: TransactionInfo, text = "Subject: hi\r\n\r\nbody\r\n") => {
  const bytes = new TextEncoder().encode(text)
  const blank = text.indexOf("\r\n\r\n")
  const bodyOffset = blank < 0 ? bytes.byteLength : blank + 2
  const added: Array<{ name: string; value: string }> = []
  const message: Message.Content = {
    size: bytes.byteLength,
    headers: Message.parseHeaders(bytes.slice(0, bodyOffset)),
    bodyOffset,
    stream: (start = 0) => Stream.succeed(bytes.slice(start))
  }
  const draft = Draft.make(message, t, { maxRecipients: 100, maxMessageSize: 1024 * 1024, spillThreshold: 64 * 1024, tempDir: undefined })
  const ctx: DataContext = {
    session: s,
    transaction: t,
    message,
    addHeader: (name, value) => {
      draft.addHeader(name, value)
      added.push({ name, value })
    },
    removeHeader: draft.removeHeader,
    edit: draft.edits
  }
  return { ctx, added, draft }
}
