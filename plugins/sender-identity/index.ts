/**
 * sender-identity: an authenticated user may only use the MAIL FROM addresses the operator gave
 * them, so that one account cannot send as another.
 *
 * @example
 * import { senderIdentity } from "./plugins/sender-identity/index.ts"
 * senderIdentity({ senders: { alice: ["alice@example.com", "@alice.example"], robot: ["*"] } })
 */
import { Effect } from "effect"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { Mailbox, Plugin } from "../../src/index.ts"

export interface SenderIdentityOptions {
  /**
   * Per user name (exactly as authenticated), the allowed MAIL FROM: `local@domain` for one
   * address, `@domain` for any address at that domain, `*` for any address. A user missing here
   * may use only the address equal to their user name, when the user name is an address.
   */
  readonly senders: Readonly<Record<string, ReadonlyArray<string>>>
}

type Rule =
  | { readonly kind: "any" }
  | { readonly kind: "domain"; readonly domain: string }
  | { readonly kind: "address"; readonly local: string; readonly domain: string }

// Local parts are compared case-insensitively too: RFC 5321 lets a server treat them as
// case-sensitive, but in practice no mailbox provider does, and `Alice@` vs `alice@` must not
// be a way around the rule nor a reason to refuse a user's own address.
const fold = (s: string): string => s.toLowerCase()

const splitAddress = (text: string): { readonly local: string; readonly domain: string } | undefined => {
  const at = text.lastIndexOf("@")
  if (at <= 0 || at === text.length - 1) return undefined
  return { local: fold(text.slice(0, at)), domain: fold(text.slice(at + 1)) }
}

const parseRule = (user: string, entry: string): Rule => {
  const text = entry.trim()
  if (text === "*") return { kind: "any" }
  if (text.startsWith("@") && text.length > 1 && !text.slice(1).includes("@")) {
    return { kind: "domain", domain: fold(text.slice(1)) }
  }
  const address = splitAddress(text)
  if (address === undefined) {
    throw new Error(
      `sender-identity: invalid sender ${JSON.stringify(entry)} for user ${JSON.stringify(user)}; ` +
        `expected local@domain, @domain or *`
    )
  }
  return { kind: "address", ...address }
}

const allows = (rule: Rule, from: Mailbox): boolean => {
  switch (rule.kind) {
    case "any":
      return true
    case "domain":
      return fold(from.domain) === rule.domain
    case "address":
      return fold(from.domain) === rule.domain && fold(from.local) === rule.local
  }
}

/**
 * Creates the plugin. Throws an `Error` naming the user and the entry when an entry is neither
 * an address, `@domain` nor `*`. Unauthenticated sessions and the null sender `<>` (bounces)
 * pass; relaying without AUTH is the business of relay-policy.
 *
 * @example
 * senderIdentity({ senders: { "alice@example.com": ["@example.com"] } })
 * // MAIL FROM:<bob@example.org> as alice@example.com:
 * // 553 5.7.1 Sender address rejected: not owned by user alice@example.com
 */
export const senderIdentity = (options: SenderIdentityOptions): Plugin => {
  const rules = new Map<string, ReadonlyArray<Rule>>()
  for (const [user, entries] of Object.entries(options.senders)) {
    rules.set(user, entries.map((entry) => parseRule(user, entry)))
  }

  const rulesFor = (user: string): ReadonlyArray<Rule> => {
    const configured = rules.get(user)
    if (configured !== undefined) return configured
    const own = splitAddress(user)
    return own === undefined ? [] : [{ kind: "address", ...own }]
  }

  return definePlugin({
    name: "sender-identity",
    // Runs for every message: untraced, as the bridge names each hook in its own span when tracing.
    mailFrom: Effect.fnUntraced(function*({ session, from }) {
      const user = session.user
      if (user === undefined || from === null) return Verdict.Continue
      if (rulesFor(user).some((rule) => allows(rule, from))) return Verdict.Continue
      return Verdict.Reject({
        code: 553,
        enhanced: "5.7.1",
        text: `Sender address rejected: not owned by user ${user}`
      })
    })
  })
}

export default senderIdentity
