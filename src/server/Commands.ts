/** One function per SMTP command outside the message transfer (DATA/BDAT) and AUTH. */
import { Effect } from "effect"
import * as Notes from "../pipeline/Notes.ts"
import * as Relay from "../pipeline/Relay.ts"
import type * as Verdict from "../pipeline/Verdict.ts"
import type { Command } from "../protocol/Command.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Spool from "../transport/Spool.ts"
import { type Conn, invalid, newId, refused, reply, replyAndClose } from "./State.ts"

/** The reply for a verdict that refused; `undefined` when it let the command through. */
export const refusal = (verdict: Verdict.Verdict): Reply.Reply | undefined => {
  switch (verdict._tag) {
    case "Continue":
    case "Accept":
      return undefined
    case "Reject":
    case "Defer":
    case "Disconnect":
      return Reply.make(verdict.code, verdict.enhanced, verdict.text)
  }
}

const notRefused = Effect.succeed(false)

/**
 * Applies a refusing verdict (closing on Disconnect) and logs it naming `plugin`, the one that
 * decided; true when the command was refused.
 */
export const refuse = (c: Conn, verdict: Verdict.Verdict, plugin: string | undefined): Effect.Effect<boolean> => {
  const r = refusal(verdict)
  if (r === undefined) return notRefused
  return Effect.as(refused(c, r, plugin ?? "bridge", { close: verdict._tag === "Disconnect" }), true)
}

export const resetTransaction = (c: Conn): Effect.Effect<void> => {
  c.tx = undefined
  const chunking = c.chunking
  c.chunking = undefined
  return chunking === undefined ? Effect.void : chunking.buffer.dispose
}

export const authOffered = (c: Conn): boolean =>
  c.env.pipeline.has("auth") && (c.session.tls !== undefined || c.env.config.allowInsecureAuth)

const ehloLines = (c: Conn, name: string): Array<string> => {
  const { config } = c.env
  const lines = [
    // The client's name as it sent it could be 4 KB of anything: repeat a printable, short form.
    `${config.hostname} greets ${Reply.echo(name)}`,
    "PIPELINING",
    `SIZE ${config.limits.maxMessageSize}`,
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "CHUNKING",
    "DSN"
  ]
  if (c.env.tls() !== undefined && c.session.tls === undefined) lines.push("STARTTLS")
  // RFC 8689: offered only once the session itself is encrypted.
  if (c.session.tls !== undefined) lines.push("REQUIRETLS")
  if (authOffered(c) && c.session.user === undefined) lines.push("AUTH PLAIN LOGIN")
  return lines
}

export const hello = Effect.fnUntraced(function*(c: Conn, verb: "EHLO" | "HELO" | "LHLO", name: string) {
  if (verb === "LHLO") return invalid(c, Reply.make(500, "5.5.2", "LHLO is for LMTP; this is SMTP"))
  const { verdict, plugin } = yield* c.env.pipeline.run("helo", { session: c.session, verb, name })
  if (yield* refuse(c, verdict, plugin)) return
  yield* resetTransaction(c)
  c.session.helo = { verb, name }
  if (verb === "HELO") reply(c, Reply.make(250, undefined, c.env.config.hostname))
  else reply(c, Reply.make(250, undefined, ehloLines(c, name)))
})

export const mail = Effect.fnUntraced(function*(c: Conn, command: Extract<Command, { verb: "MAIL" }>) {
  if (c.session.helo === undefined) return invalid(c, Reply.badSequence("Send EHLO or HELO first"))
  if (c.tx !== undefined) return invalid(c, Reply.badSequence("Nested MAIL command"))
  const { params } = command
  if (params.requireTls === true && c.session.tls === undefined) {
    return yield* refused(c, Reply.make(530, "5.7.10", "REQUIRETLS needs a TLS session"), "bridge")
  }
  if (params.size !== undefined && params.size > c.env.config.limits.maxMessageSize) {
    return yield* refused(c, Reply.tooBig, "bridge")
  }
  const { verdict, plugin } = yield* c.env.pipeline.run("mailFrom", { session: c.session, from: command.from, params })
  // 530 (authenticate first) is what a stranger probing for an open relay gets, MAIL after MAIL:
  // it counts toward the invalid-command limit like any other command that could not succeed.
  if (verdict._tag === "Reject" && verdict.code === 530 && ++c.invalid > c.env.config.limits.maxInvalidCommands) {
    return replyAndClose(c, Reply.make(421, "4.7.0", "Too many errors, closing connection"))
  }
  if (yield* refuse(c, verdict, plugin)) return
  const { spool } = c.env
  const floor = c.env.config.spool?.minFreeSpace
  if (spool !== undefined && floor !== undefined && !(yield* Spool.hasRoom(spool.dir, params.size ?? 0, floor))) {
    yield* Effect.logWarning(`spool ${spool.dir}: less than ${(params.size ?? 0) + floor} bytes free; MAIL refused with 452 4.3.1`)
    return yield* refused(c, Reply.make(452, "4.3.1", "Insufficient system storage"), "bridge")
  }
  c.tx = { id: newId(), mailFrom: command.from, mailParams: params, recipients: [], notes: Notes.make() }
  reply(c, Reply.make(250, "2.1.0", "Ok"))
})

export const rcpt = Effect.fnUntraced(function*(c: Conn, command: Extract<Command, { verb: "RCPT" }>) {
  const tx = c.tx
  if (tx === undefined) return invalid(c, Reply.badSequence("Need MAIL before RCPT"))
  if (c.chunking !== undefined) return invalid(c, Reply.badSequence("RCPT not allowed during BDAT transfer"))
  if (tx.recipients.length >= c.env.config.limits.maxRecipients) return yield* refused(c, Reply.tooManyRecipients, "bridge")
  const recipient = { mailbox: command.to, params: command.params }
  const { verdict, plugin } = yield* c.env.pipeline.run("rcptTo", { session: c.session, transaction: tx, recipient })
  if (yield* refuse(c, verdict, plugin)) return
  // When every plugin continued, the bridge's own policy: no relaying for strangers.
  if (verdict._tag === "Continue" && c.session.user === undefined && c.session.notes.get(Relay.Trusted) !== true) {
    return yield* refused(c, Reply.relayDenied, "bridge")
  }
  tx.recipients.push(recipient)
  reply(c, Reply.make(250, "2.1.5", "Ok"))
})

export const rset = Effect.fnUntraced(function*(c: Conn) {
  yield* resetTransaction(c)
  reply(c, Reply.make(250, "2.0.0", "Ok"))
})

export const quit = (c: Conn) => replyAndClose(c, Reply.make(221, "2.0.0", `${c.env.config.hostname} closing connection`))

export const noop = (c: Conn) => reply(c, Reply.make(250, "2.0.0", "Ok"))

export const vrfy = (c: Conn) =>
  reply(c, Reply.make(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))

export const expn = (c: Conn) => reply(c, Reply.make(502, "5.5.1", "EXPN not available"))

export const help = (c: Conn) =>
  reply(c, Reply.make(214, "2.0.0", ["smtp-bridge: see RFC 5321 for the commands", "End of HELP"]))

/** STARTTLS (RFC 3207): input pipelined after it is discarded, then the session starts over. */
export const startTls = Effect.fnUntraced(function*(c: Conn) {
  const context = c.env.tls()
  if (context === undefined) return invalid(c, Reply.make(502, "5.5.1", "STARTTLS not available"))
  if (c.session.tls !== undefined) return invalid(c, Reply.badSequence("TLS already active"))
  if (c.chunking !== undefined) return invalid(c, Reply.badSequence("STARTTLS not allowed during BDAT transfer"))
  c.lines.takeRemaining()
  reply(c, Reply.make(220, "2.0.0", "Ready to start TLS"))
  const out = c.out.join("")
  c.out.length = 0
  c.outBytes = 0
  // Input queued until the 220 leaves was sent before it: plaintext, never to be read as a command.
  // What comes after it is the ClientHello, kept for the handshake: the fiber may not get to the
  // upgrade before it arrives (a scheduler turn, a write that waits for the kernel).
  yield* Effect.suspend(() => {
    c.socket.discardInput()
    return c.socket.write(out)
  })
  const ok = yield* c.socket.upgradeTls(context, { keepBuffered: true }).pipe(
    Effect.timeout(c.env.config.limits.greetingTimeout),
    Effect.as(true),
    Effect.catchAll((error) => Effect.logInfo(`STARTTLS failed: ${error.message}`).pipe(Effect.as(false)))
  )
  if (!ok) {
    c.closing = true
    return
  }
  const state = c.socket.tls()
  c.session.tls = { protocol: state?.protocol ?? "TLS", cipher: state?.cipher ?? "unknown", mode: "starttls" }
  c.session.helo = undefined
  c.session.user = undefined
  c.session.authMechanism = undefined
  yield* resetTransaction(c)
})
