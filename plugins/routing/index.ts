/**
 * routing: picks the transport for each recipient from ordered rules, by recipient domain or
 * address pattern, sender, authenticated user and client network. The first matching rule wins;
 * recipients no rule matches go to `defaultTransport` (or the transport named `default`).
 *
 * @example
 * routing({
 *   rules: [
 *     { recipientDomain: ["corp.example"], transport: "exchange" },
 *     { recipient: "*@tickets.example", transport: "helpdesk-webhook" },
 *     { user: ["billing@example.com"], transport: "mail-api" },
 *     { network: ["10.0.0.0/8"], transport: "internal" }
 *   ],
 *   defaultTransport: "postfix"
 * })
 */
import * as Effect from "effect/Effect"
import { Cidr, definePlugin } from "../../src/index.ts"
import type { Mailbox, Plugin, Recipient, Route, SessionInfo, TransactionInfo } from "../../src/index.ts"
import type { OptionsInput, Rule } from "./options.ts"

export type { Rule } from "./options.ts"
/** The options as a user writes them; their schema is in `options.ts`. */
export type RoutingOptions = OptionsInput

const list = (value: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> | undefined =>
  value === undefined ? undefined : typeof value === "string" ? [value] : value

// ASCII case folding only: `toLowerCase` would take a Kelvin sign (U+212A) for a `k`.
const fold = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase())

/**
 * A `*` pattern as a matcher. Not a RegExp of `.*`s: with k stars V8 backtracks through O(n^k)
 * splits of an address that almost matches (`*a*a*a*b` against 200 `a`s). Greedy matching with
 * one resume point (the last star) is O(n * m) and gives the same answers.
 */
export const glob = (pattern: string): { readonly test: (s: string) => boolean } => {
  const p = fold(pattern)
  return {
    test: (input) => {
      const s = fold(input)
      let i = 0
      let j = 0
      let star = -1
      let resume = 0
      while (i < s.length) {
        if (j < p.length && p[j] !== "*" && p[j] === s[i]) {
          i++
          j++
        } else if (j < p.length && p[j] === "*") {
          star = j++
          resume = i
        } else if (star !== -1) {
          j = star + 1
          i = ++resume
        } else return false
      }
      while (j < p.length && p[j] === "*") j++
      return j === p.length
    }
  }
}

const domainMatches = (domains: ReadonlyArray<string>, domain: string): boolean => {
  const d = domain.toLowerCase()
  return domains.some((entry) => {
    const e = entry.toLowerCase()
    return e.startsWith(".") ? d.endsWith(e) || d === e.slice(1) : d === e
  })
}

interface Compiled {
  readonly transport: string
  readonly perMessage: (session: SessionInfo, from: Mailbox | null) => boolean
  readonly perRecipient: (recipient: Recipient) => boolean
}

const compile = (rule: Rule, index: number): Compiled => {
  const recipients = list(rule.recipient)?.map(glob)
  const senders = list(rule.sender)
  const senderGlobs = senders?.filter((s) => s !== "<>").map(glob)
  const networks = rule.network === undefined ? undefined : Cidr.parseList(rule.network)
  if (networks !== undefined && "error" in networks) throw new Error(`routing: rules[${index}].network: ${networks.error}`)
  const nets = networks?.ok
  return {
    transport: rule.transport,
    perMessage: (session, from) =>
      (senders === undefined ||
        (from === null ? senders.includes("<>") : senderGlobs!.some((g) => g.test(from.address)))) &&
      (rule.user === undefined ||
        (session.user !== undefined && (rule.user.includes("*") || rule.user.includes(session.user)))) &&
      (nets === undefined || Cidr.matchAny(nets, session.remoteAddress)),
    perRecipient: (r) =>
      (rule.recipientDomain === undefined || domainMatches(rule.recipientDomain, r.mailbox.domain)) &&
      (recipients === undefined || recipients.some((g) => g.test(r.mailbox.address)))
  }
}

/** Groups recipients by transport: one upstream transaction per transport. */
export const plan = (
  rules: ReadonlyArray<Compiled>,
  fallback: string,
  session: SessionInfo,
  transaction: TransactionInfo
): ReadonlyArray<Route> => {
  const applicable = rules.filter((r) => r.perMessage(session, transaction.mailFrom))
  const groups = new Map<string, Array<Recipient>>()
  for (const recipient of transaction.recipients) {
    const transport = applicable.find((r) => r.perRecipient(recipient))?.transport ?? fallback
    const group = groups.get(transport)
    if (group === undefined) groups.set(transport, [recipient])
    else group.push(recipient)
  }
  return [...groups].map(([transport, recipients]) => ({ transport, recipients }))
}

/**
 * Creates the plugin. Throws naming the rule when a network is invalid. Transports are checked
 * against the configuration at start-up by `validate`.
 */
export const routing = (options: RoutingOptions): Plugin => {
  const rules = options.rules.map(compile)
  const fallback = options.defaultTransport ?? "default"
  return definePlugin({
    name: "routing",
    route: Effect.fnUntraced(function*({ session, transaction }) {
      return plan(rules, fallback, session, transaction)
    })
  })
}

/** The transport names the options refer to that are not among `known`. */
export const unknownTransports = (options: RoutingOptions, known: ReadonlyArray<string>): ReadonlyArray<string> =>
  [...new Set([...options.rules.map((r) => r.transport), options.defaultTransport ?? "default"])]
    .filter((t) => !known.includes(t))

export default routing
