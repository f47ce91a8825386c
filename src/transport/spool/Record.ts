/**
 * The spool's state file: one JSON document per queued message, next to the message bytes. It is
 * the commit point of an enqueue and is replaced atomically after every delivery attempt.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Mailbox, MailParams, RcptParams, Recipient } from "../../protocol/Envelope.ts"
import type { Reply } from "../../protocol/Reply.ts"

const MailboxJson = Schema.Struct({ local: Schema.String, domain: Schema.String, address: Schema.String })

// JSON drops `undefined`, which is how bare ESMTP keywords are kept in `raw`: store entries with null.
const RawJson = Schema.Array(Schema.Tuple(Schema.String, Schema.NullOr(Schema.String)))

const exact = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const MailParamsJson = Schema.Struct({
  size: exact(Schema.Number),
  body: exact(Schema.Literal("7BIT", "8BITMIME", "BINARYMIME")),
  smtputf8: exact(Schema.Boolean),
  ret: exact(Schema.Literal("FULL", "HDRS")),
  envid: exact(Schema.String),
  requireTls: exact(Schema.Boolean),
  auth: exact(Schema.String),
  raw: RawJson
})

const RecipientJson = Schema.Struct({
  mailbox: MailboxJson,
  notify: exact(Schema.Array(Schema.Literal("NEVER", "SUCCESS", "FAILURE", "DELAY"))),
  orcpt: exact(Schema.String),
  raw: RawJson
})

const ReplyJson = Schema.Struct({
  code: Schema.Number,
  enhanced: exact(Schema.String),
  lines: Schema.Array(Schema.String)
})

/** What the spool keeps of the client's session: enough for logs, Received-style headers and webhooks. */
export const SessionJson = Schema.Struct({
  id: Schema.String,
  remoteAddress: Schema.String,
  remotePort: exact(Schema.Number),
  localAddress: exact(Schema.String),
  localPort: exact(Schema.Number),
  hostname: exact(Schema.String),
  helo: exact(Schema.Struct({ verb: Schema.Literal("EHLO", "HELO", "LHLO"), name: Schema.String })),
  user: exact(Schema.String),
  authMechanism: exact(Schema.String),
  tls: exact(Schema.Struct({
    protocol: Schema.String,
    cipher: Schema.String,
    mode: Schema.Literal("starttls", "implicit")
  }))
})
export type SessionJson = typeof SessionJson.Type

export const RecipientState = Schema.Literal("pending", "delivered", "failed")
export type RecipientState = typeof RecipientState.Type

const RecipientRecordJson = Schema.Struct({
  recipient: RecipientJson,
  transport: Schema.String,
  state: RecipientState,
  attempts: Schema.Number,
  lastReply: exact(ReplyJson)
})

export const RecordJson = Schema.Struct({
  version: Schema.Literal(1),
  id: Schema.String,
  /** Milliseconds since the epoch, as are all times here. */
  created: Schema.Number,
  size: Schema.Number,
  mailFrom: Schema.NullOr(MailboxJson),
  mailParams: MailParamsJson,
  session: SessionJson,
  attempts: Schema.Number,
  nextAttempt: Schema.Number,
  recipients: Schema.Array(RecipientRecordJson)
})

/** One recipient's delivery state, in domain types. */
export interface RecipientRecord {
  readonly recipient: Recipient
  readonly transport: string
  readonly state: RecipientState
  readonly attempts: number
  readonly lastReply?: Reply | undefined
}

/** One queued message, in domain types. */
export interface Record {
  readonly id: string
  readonly created: number
  readonly size: number
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
  readonly session: SessionJson
  /** Delivery attempts made so far; drives the backoff. */
  readonly attempts: number
  readonly nextAttempt: number
  readonly recipients: ReadonlyArray<RecipientRecord>
}

const toRaw = (raw: Readonly<globalThis.Record<string, string | undefined>>) =>
  Object.entries(raw).map(([k, v]) => [k, v ?? null] as const)

const fromRaw = (entries: ReadonlyArray<readonly [string, string | null]>): globalThis.Record<string, string | undefined> => {
  const out: globalThis.Record<string, string | undefined> = {}
  for (const [k, v] of entries) out[k] = v ?? undefined
  return out
}

/** Copies only the defined optional fields, as `exactOptionalPropertyTypes` and JSON both want. */
const defined = <A extends object>(value: A): A => {
  const out: globalThis.Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v
  return out as A
}

const encodeReply = (reply: Reply): typeof ReplyJson.Type =>
  defined({ code: reply.code, enhanced: reply.enhanced, lines: [...reply.lines] }) as typeof ReplyJson.Type

export const encode = (record: Record): string => {
  const json: typeof RecordJson.Encoded = {
    version: 1,
    id: record.id,
    created: record.created,
    size: record.size,
    mailFrom: record.mailFrom === null ? null : { ...record.mailFrom },
    mailParams: { ...defined({ ...record.mailParams }), raw: toRaw(record.mailParams.raw) },
    session: defined({ ...record.session }),
    attempts: record.attempts,
    nextAttempt: record.nextAttempt,
    recipients: record.recipients.map((r) =>
      defined({
        recipient: defined({
          mailbox: { ...r.recipient.mailbox },
          notify: r.recipient.params.notify,
          orcpt: r.recipient.params.orcpt,
          raw: toRaw(r.recipient.params.raw)
        }),
        transport: r.transport,
        state: r.state,
        attempts: r.attempts,
        lastReply: r.lastReply === undefined ? undefined : encodeReply(r.lastReply)
      }) as typeof RecipientRecordJson.Encoded
    )
  }
  return JSON.stringify(json, null, 1) + "\n"
}

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(RecordJson))

/** Parses a state file; `Left` carries a message saying what is wrong with it. */
export const decode = (text: string): Either.Either<Record, string> =>
  Either.match(decodeJson(text), {
    onLeft: (error) =>
      Either.left(
        ParseResult.ArrayFormatter.formatErrorSync(error)
          .map((issue) => (issue.path.length === 0 ? issue.message : `${issue.path.join(".")}: ${issue.message}`))
          .join("; ")
      ),
    onRight: (json) =>
      Either.right({
        id: json.id,
        created: json.created,
        size: json.size,
        mailFrom: json.mailFrom,
        mailParams: { ...json.mailParams, raw: fromRaw(json.mailParams.raw) },
        session: json.session,
        attempts: json.attempts,
        nextAttempt: json.nextAttempt,
        recipients: json.recipients.map((r) => ({
          recipient: {
            mailbox: r.recipient.mailbox,
            params: defined({ notify: r.recipient.notify, orcpt: r.recipient.orcpt, raw: fromRaw(r.recipient.raw) }) as RcptParams
          },
          transport: r.transport,
          state: r.state,
          attempts: r.attempts,
          lastReply: r.lastReply
        }))
      })
  })
