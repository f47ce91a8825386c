/**
 * The HTTP hooks' request and answer, as `effect/Schema`s: the plugin encodes requests and
 * decodes answers with them, and docs/schemas/hook-request.json and hook-response.json are made
 * from them (`JSONSchema.make`; a test keeps the files equal to what they give).
 */
import * as Schema from "effect/Schema"

export const Stage = Schema.Literal("connect", "helo", "mailFrom", "rcptTo", "data")
export type Stage = typeof Stage.Type

const Header = Schema.Struct({ name: Schema.String, value: Schema.String })

export const Request = Schema.Struct({
  version: Schema.Literal(1),
  stage: Stage,
  session: Schema.Struct({
    id: Schema.String,
    remoteAddress: Schema.String,
    remotePort: Schema.Number,
    localAddress: Schema.String,
    localPort: Schema.Number,
    hostname: Schema.String,
    helo: Schema.NullOr(Schema.String),
    tls: Schema.NullOr(Schema.Struct({ protocol: Schema.String, cipher: Schema.String })),
    user: Schema.NullOr(Schema.String)
  }),
  /** From MAIL on: the transaction (`mailFrom` "" is the null sender `<>`). */
  envelope: Schema.NullOr(Schema.Struct({
    transaction: Schema.NullOr(Schema.String),
    mailFrom: Schema.String,
    params: Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.String) }),
    recipients: Schema.Array(Schema.String)
  })),
  /** At rcptTo: the recipient being checked (not yet among `recipients`). */
  recipient: Schema.optional(Schema.String),
  /**
   * At data: the header fields in order, and the message itself: with `body: "inline"`, `raw`
   * (base64) when it is at most `maxMessageBytes`; with `body: "url"`, `body`, where to GET it.
   */
  message: Schema.optional(Schema.Struct({
    size: Schema.Number,
    headers: Schema.Array(Header),
    raw: Schema.optional(Schema.String),
    /** The whole message (message/rfc822, `size` bytes), for one GET while this request is pending. */
    body: Schema.optional(Schema.Struct({ url: Schema.String, size: Schema.Number }))
  }))
}).annotations({ identifier: "HookRequest", title: "smtp-bridge HTTP hook request" })
export type Request = typeof Request.Type

const Address = Schema.String.pipe(Schema.maxLength(512))

export const Response = Schema.Struct({
  /** `accept` and `continue` let the stage through; `discard` and `quarantine` only at data. */
  action: Schema.Literal("accept", "continue", "reject", "tempfail", "discard", "quarantine"),
  /** Reply code for reject (5xx, default 550) and tempfail (4xx, default 451). */
  code: Schema.optional(Schema.Int.pipe(Schema.between(400, 599))),
  enhanced: Schema.optional(Schema.String.pipe(Schema.pattern(/^[45]\.\d{1,3}\.\d{1,3}$/))),
  /** Reply text; a line feed starts another reply line (at most 10 lines). */
  text: Schema.optional(Schema.String.pipe(Schema.maxLength(2000))),
  /** Why a message is discarded or quarantined (logged). */
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(2000))),
  /** Changes to the message, at data only. */
  modifications: Schema.optional(Schema.Struct({
    addHeaders: Schema.optional(Schema.Array(Header).pipe(Schema.maxItems(100))),
    removeHeaders: Schema.optional(Schema.Array(Schema.String).pipe(Schema.maxItems(100))),
    addRecipients: Schema.optional(Schema.Array(Address).pipe(Schema.maxItems(1000))),
    removeRecipients: Schema.optional(Schema.Array(Address).pipe(Schema.maxItems(1000))),
    /** The new envelope sender; "" is the null sender. */
    setSender: Schema.optional(Address)
  }))
}).annotations({ identifier: "HookResponse", title: "smtp-bridge HTTP hook response" })
export type Response = typeof Response.Type
