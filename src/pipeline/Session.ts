/** What plugins can see of a connection and of the transaction in progress. */
import type { Envelope, Mailbox, MailParams, Recipient } from "../protocol/Envelope.ts"
import type * as Notes from "./Notes.ts"

export interface TlsInfo {
  readonly protocol: string
  readonly cipher: string
  /** How TLS started on this connection. */
  readonly mode: "starttls" | "implicit"
}

export interface SessionInfo {
  /** Unique per connection; appears in logs and in the Received header. */
  readonly id: string
  /** The client's address: the PROXY protocol source when a trusted proxy sent one. */
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number
  /** The bridge's own name, as in the greeting. */
  readonly hostname: string
  /** Set once TLS is active. */
  readonly tls: TlsInfo | undefined
  /** The EHLO/HELO name and verb, once given. */
  readonly helo: { readonly verb: "EHLO" | "HELO" | "LHLO"; readonly name: string } | undefined
  /** The authenticated identity, once AUTH succeeded. */
  readonly user: string | undefined
  readonly authMechanism: string | undefined
  /** Notes live for the whole connection. */
  readonly notes: Notes.Notes
}

export interface TransactionInfo {
  /** Unique per transaction; the `queued as` id of the final reply. */
  readonly id: string
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
  /** Recipients accepted so far. */
  readonly recipients: ReadonlyArray<Recipient>
  /** Notes live until the transaction ends (RSET, end of data, new MAIL). */
  readonly notes: Notes.Notes
}

export const envelopeOf = (t: TransactionInfo): Envelope => ({
  mailFrom: t.mailFrom,
  mailParams: t.mailParams,
  recipients: t.recipients
})
