/**
 * Recipient verification upstream: asks an SMTP or LMTP relay whether it would take a recipient
 * (MAIL FROM:<>, RCPT TO, RSET on a pooled session), as Postfix's verify(8) probes do, without
 * sending anything. Its sessions are its own, not the delivery pool's: a probe never waits behind
 * a 50 MB transfer, and a delivery never inherits a session in the middle of a probe.
 *
 * The answer says who decided: `Recipient` is the upstream's verdict on this recipient (its
 * reply, 2xx or 4xx or 5xx); `Unavailable` is anything else (unreachable, slow, a refusal of
 * the probe's MAIL, a broken session), which must never become a 5xx for the client.
 *
 * @example
 * const probe = yield* Probe.fromConfig("default", relayConfig, { helo: "mx.example.com" })
 * const answer = yield* probe.check(recipient) // { _tag: "Recipient", reply } | { _tag: "Unavailable", message }
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { RelayTransportConfig } from "../../config/Config.ts"
import type { Mailbox } from "../../protocol/Envelope.ts"
import type * as Reply from "../../protocol/Reply.ts"
import { TransportError } from "../Transport.ts"
import * as Client from "./Client.ts"
import * as Pool from "./Pool.ts"
import * as Replies from "./Replies.ts"
import * as SmtpRelay from "./SmtpRelay.ts"

export type Answer =
  | { readonly _tag: "Recipient"; readonly reply: Reply.Reply }
  | { readonly _tag: "Unavailable"; readonly reason: "Unreachable" | "Timeout" | "Refused"; readonly message: string }

export interface Probe {
  readonly name: string
  /** Never fails: every failure is an `Unavailable` answer. */
  readonly check: (recipient: Mailbox) => Effect.Effect<Answer>
}

export interface ProbeOptions {
  readonly helo: string
  /** The whole probe, connecting included; default 30 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Sessions open at once; default 4. */
  readonly max?: number
}

const unavailable = (reason: "Unreachable" | "Timeout" | "Refused", message: string): Answer => ({ _tag: "Unavailable", reason, message })

const fromError = (e: TransportError): Answer => unavailable(e.reason === "Timeout" ? "Timeout" : e.reason === "Rejected" ? "Refused" : "Unreachable", e.message)

export const fromConfig = (
  name: string,
  config: RelayTransportConfig,
  options: ProbeOptions
): Effect.Effect<Probe, SmtpRelay.RelayConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* SmtpRelay.clientOptionsFromConfig(name, config, { helo: options.helo })
    const timeout = Duration.decode(options.timeout ?? "30 seconds")
    const command = Duration.min(Duration.decode(client.timeouts.command), timeout)
    const max = options.max ?? 4
    const pool = yield* Pool.make<Client.Session, TransportError>({
      acquire: Client.open({ ...client, timeouts: { ...client.timeouts, connect: Duration.min(Duration.decode(client.timeouts.connect), timeout), command } }),
      max,
      idleTimeout: config.idleTimeout,
      acquireTimeout: timeout,
      reusable: (s) => !s.wire.broken() && s.wire.socket.idle() && s.transactions < 100,
      onExhausted: () => new TransportError({ transport: name, reason: "Timeout", message: `${name}: all ${max} verification sessions stayed busy` })
    })

    const probe = (session: Client.Session, recipient: Mailbox): Effect.Effect<Answer, TransportError> =>
      Effect.gen(function*() {
        session.transactions++
        const { wire } = session
        const mail = yield* wire.command("MAIL FROM:<>", command, "MAIL FROM")
        if (mail.code !== 250) {
          // Not a word about the recipient: an upstream refusing our probe is an outage to us.
          if (mail.code === 421) wire.markBroken()
          yield* Effect.ignore(wire.command("RSET", command, "RSET"))
          return unavailable("Refused", `${name}: upstream ${wire.socket.description} answered the probe's MAIL FROM:<> with ${Replies.describe(mail)}`)
        }
        const rcpt = yield* wire.command(`RCPT TO:<${recipient.address}>`, command, "RCPT TO")
        const rset = yield* wire.command("RSET", command, "RSET")
        if (rset.code !== 250) wire.markBroken()
        // 421 is the upstream closing, not a verdict on the recipient.
        if (rcpt.code === 421) {
          wire.markBroken()
          return unavailable("Refused", `${name}: upstream ${wire.socket.description} answered RCPT with ${Replies.describe(rcpt)}`)
        }
        return { _tag: "Recipient", reply: rcpt } satisfies Answer as Answer
      }).pipe(Effect.onInterrupt(() => Effect.sync(() => session.wire.markBroken())))

    const attempt = (recipient: Mailbox, fresh: boolean) =>
      pool.use((session, reused) => Effect.map(Effect.either(probe(session, recipient)), (result) => ({ result, reused })), { fresh })

    const check = (recipient: Mailbox): Effect.Effect<Answer> =>
      attempt(recipient, false).pipe(
        // A pooled session the upstream closed while idle: one retry on a new one.
        Effect.flatMap(({ result, reused }) =>
          result._tag === "Right" ? Effect.succeed(result.right) : reused && result.left.reason === "Unreachable"
            ? Effect.flatMap(attempt(recipient, true), (retry) => (retry.result._tag === "Right" ? Effect.succeed(retry.result.right) : Effect.fail(retry.result.left)))
            : Effect.fail(result.left)
        ),
        Effect.timeoutFail({ duration: timeout, onTimeout: () => unavailable("Timeout", `${name}: no verification answer within ${Duration.format(timeout)}`) }),
        Effect.catchAll((e) => Effect.succeed(e instanceof TransportError ? fromError(e) : e))
      )

    return { name, check }
  })
