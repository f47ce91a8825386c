/**
 * relay-policy: a submission service (RFC 6409) relays only for authenticated users and for
 * networks the operator trusts. Trusted clients are marked with `Relay.Trusted` at connect so
 * that the bridge's own fallback policy and later plugins see the same decision.
 *
 * @example
 * import { relayPolicy } from "./plugins/relay-policy/index.ts"
 * relayPolicy({ trust: ["127.0.0.1", "::1", "10.0.0.0/8"] })
 */
import * as Effect from "effect/Effect"
import { Cidr, definePlugin, Relay, Verdict } from "../../src/index.ts"
import type { Plugin, SessionInfo } from "../../src/index.ts"

export interface RelayPolicyOptions {
  /** Networks (CIDR or bare addresses) whose clients may send without AUTH. */
  readonly trust: ReadonlyArray<string>
}

const mayRelay = (session: SessionInfo): boolean =>
  session.user !== undefined || session.notes.get(Relay.Trusted) === true

/**
 * Creates the plugin. Throws an `Error` naming the entry when a network in `trust` is invalid,
 * so a typo fails at start-up instead of silently trusting nobody (or everybody).
 *
 * @example
 * relayPolicy({ trust: ["192.0.2.0/24"] }) // a plugin named "relay-policy"
 * relayPolicy({ trust: ["192.0.2.0/33"] }) // throws: relay-policy: invalid CIDR "192.0.2.0/33" ...
 */
export const relayPolicy = (options: RelayPolicyOptions): Plugin => {
  const parsed = Cidr.parseList(options.trust)
  if ("error" in parsed) throw new Error(`relay-policy: ${parsed.error}`)
  const trusted = parsed.ok

  return definePlugin({
    name: "relay-policy",

    // Runs for every message: untraced, as the bridge names each hook in its own span when tracing.
    connect: Effect.fnUntraced(function*({ session }) {
      if (Cidr.matchAny(trusted, session.remoteAddress)) session.notes.set(Relay.Trusted, true)
      return Verdict.Continue
    }),

    // Refusing at MAIL already tells an unauthenticated client what to do (530: authenticate),
    // before it spends recipients and data on a transaction that could never succeed.
    mailFrom: Effect.fnUntraced(function*({ session }) {
      return mayRelay(session)
        ? Verdict.Continue
        : Verdict.Reject({ code: 530, enhanced: "5.7.0", text: "Authentication required" })
    }),

    // Defence in depth: should a plugin before this one accept MAIL, RCPT still refuses.
    rcptTo: Effect.fnUntraced(function*({ session }) {
      return mayRelay(session)
        ? Verdict.Continue
        : Verdict.Reject({ code: 554, enhanced: "5.7.1", text: "Relay access denied" })
    })
  })
}

export default relayPolicy
