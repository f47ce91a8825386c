/**
 * policy: asks a Postfix policy delegation service (postgrey, policyd-spf, policyd-rate-limit...)
 * at each RCPT, or once at the end of the message, and does what it answers, as Postfix's
 * `check_policy_service` does. See README.md for the attributes sent and what each action does.
 *
 * @example
 * import { policy } from "./plugins/policy/index.ts"
 * defineConfig({ plugins: [policy({ server: "inet:127.0.0.1:10023" })] })
 */
import * as Effect from "effect/Effect"
import { definePlugin, Notes, Verdict } from "../../src/index.ts"
import type { DataContext, RcptToContext, SessionInfo, TransactionInfo } from "../../src/index.ts"
import * as Client from "./Client.ts"
import { Options, parseServer } from "./options.ts"
import * as Protocol from "./Protocol.ts"

export type { OptionsInput as PolicyOptions } from "./options.ts"

type Stage = "RCPT" | "END-OF-MESSAGE"

/** The attributes Postfix's smtpd sends (SMTPD_POLICY_README), with what the bridge knows of each. */
export const attributes = (
  stage: Stage,
  session: SessionInfo,
  transaction: TransactionInfo,
  details: { readonly recipient: string; readonly recipientCount: number; readonly size: number | undefined; readonly context: string | undefined }
): ReadonlyArray<Protocol.Attribute> => [
  ["request", "smtpd_access_policy"],
  ["protocol_state", stage],
  ["protocol_name", session.helo?.verb === "HELO" ? "SMTP" : session.helo?.verb === "LHLO" ? "LMTP" : "ESMTP"],
  ["client_address", session.remoteAddress],
  ["client_port", String(session.remotePort)],
  // The bridge does not look up the client's name; Postfix sends "unknown" when it has none.
  ["client_name", "unknown"],
  ["reverse_client_name", "unknown"],
  ["server_address", session.localAddress],
  ["server_port", String(session.localPort)],
  ["helo_name", session.helo?.name ?? ""],
  ["sender", transaction.mailFrom?.address ?? ""],
  ["recipient", details.recipient],
  ["recipient_count", String(details.recipientCount)],
  ["queue_id", transaction.id],
  // One value per message, as Postfix's instance: a service may count a message's recipients.
  ["instance", transaction.id],
  ["size", String(details.size ?? 0)],
  ["etrn_domain", ""],
  ["stress", ""],
  ["sasl_method", session.user === undefined ? "" : session.authMechanism ?? ""],
  ["sasl_username", session.user ?? ""],
  ["sasl_sender", ""],
  ["ccert_subject", ""],
  ["ccert_issuer", ""],
  ["ccert_fingerprint", ""],
  ["ccert_pubkey_fingerprint", ""],
  ["encryption_protocol", session.tls?.protocol ?? ""],
  ["encryption_cipher", session.tls?.cipher ?? ""],
  ["encryption_keysize", ""],
  ["policy_context", details.context ?? ""]
]

interface Prepended {
  readonly name: string
  readonly value: string
}

export const policy = definePlugin({
  name: "policy",
  options: Options,
  // Its own `timeout` bounds each request (then `defaultAction`); this only backs it up.
  timeout: "15 minutes",
  // The pool: sessions share its connections.
  files: (o) => ({ held: o.connections }),
  make: (options) => {
    const endpoint = parseServer(options.server)!
    const fallback = Protocol.action(options.defaultAction)
    // PREPEND answers at RCPT become header fields when the message is there (per server, so two
    // policy plugins keep theirs apart).
    const Prepends = Notes.key<Array<Prepended>>(`policy.prepend.${options.server}`)

    return {
      setup: Effect.gen(function*() {
        const client = yield* Client.make({ endpoint, ...options })

        const ask = (attributes: ReadonlyArray<Protocol.Attribute>): Effect.Effect<Protocol.Action> =>
          client.ask(Protocol.encode(attributes)).pipe(
            Effect.flatMap((answer) => {
              const raw = Protocol.actionOf(answer)
              return raw === undefined
                ? Effect.as(Effect.logWarning(`policy ${options.server}: an answer without action=; using the default action`), fallback)
                : Effect.succeed(Protocol.action(raw))
            }),
            Effect.catchAll((error) => Effect.as(Effect.logWarning(`${error.message}; using the default action`), fallback)),
            Effect.flatMap((action) =>
              action._tag === "Unsupported"
                ? Effect.as(Effect.logWarning(`policy ${options.server}: ${action.action}: the bridge has no hold queue, discard or filter; using the default action`), fallback)
                : action._tag === "Continue" && action.note !== undefined
                ? Effect.as(Effect.logInfo(`policy ${options.server}: ${action.note}`), action)
                : Effect.succeed(action)
            )
          )

        // What the client reads, as Postfix words it: the address first, then the service's text.
        const verdict = (action: Protocol.Action, prefix: string): Verdict.Verdict => {
          switch (action._tag) {
            case "Accept":
              return Verdict.accept()
            case "Refuse": {
              const reply = { code: action.code, enhanced: action.enhanced, text: `${prefix}${action.text}` }
              return action.code >= 500 ? Verdict.Reject(reply) : Verdict.Defer(reply)
            }
            default:
              return Verdict.Continue
          }
        }

        const echo = (address: string) => address.replace(/[^\x21-\x7e]/g, "?").slice(0, 256)

        const rcptTo = Effect.fnUntraced(function*({ session, transaction, recipient }: RcptToContext) {
          const action = yield* ask(attributes("RCPT", session, transaction, {
            recipient: recipient.mailbox.address,
            recipientCount: transaction.recipients.length,
            size: transaction.mailParams.size,
            context: options.context
          }))
          if (action._tag === "Prepend") {
            const list = transaction.notes.get(Prepends) ?? []
            // One recipient's answer is enough: greylisting prepends the same line for each.
            if (!list.some((p) => p.name === action.name && p.value === action.value)) list.push({ name: action.name, value: action.value })
            transaction.notes.set(Prepends, list)
          }
          return verdict(action, `<${echo(recipient.mailbox.address)}>: Recipient address rejected: `)
        })

        const addPrepended = Effect.fnUntraced(function*({ transaction, addHeader }: DataContext) {
          for (const p of transaction.notes.get(Prepends) ?? []) addHeader(p.name, p.value)
          return Verdict.Continue
        })

        const endOfMessage = Effect.fnUntraced(function*({ session, transaction, message, addHeader }: DataContext) {
          const action = yield* ask(attributes("END-OF-MESSAGE", session, transaction, {
            recipient: transaction.recipients.length === 1 ? transaction.recipients[0]!.mailbox.address : "",
            recipientCount: transaction.recipients.length,
            size: message.size,
            context: options.context
          }))
          if (action._tag === "Prepend") addHeader(action.name, action.value)
          return verdict(action, "End-of-data rejected: ")
        })

        return options.stage === "rcpt" ? { rcptTo, data: addPrepended } : { data: endOfMessage }
      })
    }
  }
})

export default policy
