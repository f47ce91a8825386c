/**
 * recipient-verify: asks the relay upstream about each recipient at RCPT time (MAIL FROM:<>,
 * RCPT, RSET on its own pooled sessions), so that an unknown recipient is refused in the session
 * with the upstream's own reply instead of bounced later. Enabled per relay transport by
 * `verifyRecipients: true` or `?verify=rcpt`; answers are cached like Postfix's verify(8).
 *
 * A rcptTo plugin rather than a step of the session machine: it needs nothing the plugin API does
 * not give (the recipient, a verdict), runs after the relay policy (an unauthenticated client can
 * never use it to probe addresses), and the operator sees and orders it like any other stage.
 *
 * @example
 * recipientVerify({ transport: "default", relay: config.transports.default, helo: "mx.example.com" })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { definePlugin, RecipientProbe, Verdict } from "../../src/index.ts"
import type { Plugin, RcptToContext, RelayTransportConfig } from "../../src/index.ts"

export interface RecipientVerifyOptions {
  /** The transport's name, in logs. */
  readonly transport: string
  readonly relay: RelayTransportConfig
  /** Our name in EHLO/LHLO. */
  readonly helo: string
  /** Only recipients in these domains go to this upstream (from the routes); all when absent. */
  readonly domains?: ReadonlyArray<string> | undefined
  /** Entries kept at most; the oldest go first. Default 10000. */
  readonly maxEntries?: number
  /** The whole probe; default 30 seconds. */
  readonly timeout?: Duration.DurationInput
}

interface Entry {
  readonly verdict: Verdict.Verdict
  readonly until: number
}

// x.1.x is the addressing class of RFC 3463 (5.1.1 no such mailbox, 5.1.2 bad domain...): a
// statement about this recipient, safe to remember. Any other 5xx (a policy or system refusal,
// as an upstream in trouble may give for everything) is passed on but not cached.
const aboutAddress = (enhanced: string | undefined, code: number): boolean =>
  enhanced === undefined ? code === 550 || code === 551 || code === 553 : /^5\.1\.\d+$/.test(enhanced)

export const recipientVerify = (options: RecipientVerifyOptions): Plugin => {
  const domains = options.domains?.map((d) => d.toLowerCase())
  const maxEntries = options.maxEntries ?? 10_000
  const positiveMs = Duration.toMillis(options.relay.verifyPositiveTtl)
  const negativeMs = Duration.toMillis(options.relay.verifyNegativeTtl)

  return definePlugin({
    name: `recipient-verify(${options.transport})`,
    // The probe's own timeout answers first (451 4.4.1); this only backs it up.
    timeout: "10 minutes",
    // The probe's pool (4 sessions).
    files: { held: 4 },
    setup: Effect.gen(function*() {
      const probe = yield* RecipientProbe.fromConfig(options.transport, options.relay, {
        helo: options.helo,
        ...(options.timeout === undefined ? {} : { timeout: options.timeout })
      })
      // Keyed by the exact address (the domain lower-cased): a client cannot make one entry stand
      // for another address, and the cache holds at most maxEntries however many it invents.
      const cache = new Map<string, Entry>()
      const remember = (key: string, verdict: Verdict.Verdict, ttl: number) => {
        cache.delete(key)
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!)
        cache.set(key, { verdict, until: Date.now() + ttl })
      }

      const rcptTo = Effect.fnUntraced(function*({ recipient }: RcptToContext) {
        const mailbox = recipient.mailbox
        const domain = mailbox.domain.toLowerCase()
        if (domains !== undefined && !domains.includes(domain)) return Verdict.Continue
        const key = `${mailbox.local}@${domain}`
        const cached = cache.get(key)
        if (cached !== undefined && cached.until > Date.now()) return cached.verdict
        const answer = yield* probe.check(mailbox)
        if (answer._tag === "Unavailable") {
          yield* Effect.logWarning(`recipient verification with ${options.transport} failed: ${answer.message}`)
          // Never a 5xx: the recipient may well exist; the client retries.
          return Verdict.defer("Recipient verification is unavailable, try again later", { code: 451, enhanced: "4.4.1" })
        }
        const { reply } = answer
        const text = reply.lines.join(" ").replace(/[^\x20-\x7e]/g, "?").slice(0, 300)
        if (reply.code >= 200 && reply.code < 300) {
          remember(key, Verdict.Continue, positiveMs)
          return Verdict.Continue
        }
        if (reply.code >= 500 && reply.code < 600) {
          const verdict = Verdict.reject(text, { code: reply.code, enhanced: reply.enhanced ?? "5.1.1" })
          if (aboutAddress(reply.enhanced, reply.code)) remember(key, verdict, negativeMs)
          return verdict
        }
        if (reply.code >= 400 && reply.code < 500) return Verdict.defer(text, { code: reply.code, enhanced: reply.enhanced ?? "4.4.1" })
        return Verdict.defer("Recipient verification is unavailable, try again later", { code: 451, enhanced: "4.4.1" })
      })

      return { rcptTo }
    })
  })
}

export default recipientVerify
