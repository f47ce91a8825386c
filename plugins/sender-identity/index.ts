/**
 * sender-identity: an authenticated user may only use the MAIL FROM addresses the operator gave
 * them, so that one account cannot send as another; and, at end of data, the same for every
 * address of the header From and Sender (550 5.7.1 naming the header, or with `forgedFrom:
 * "unsigned"` accepted without the `Senders.HeaderFromAllowed` note DKIM signers need).
 *
 * @example
 * import { senderIdentity } from "./plugins/sender-identity/index.ts"
 * senderIdentity({ senders: { alice: ["alice@example.com", "@alice.example"], robot: ["*"] } })
 */
import * as Effect from "effect/Effect"
import { definePlugin, Senders, Verdict } from "../../src/index.ts"
import type { Mailbox, Notes, Plugin } from "../../src/index.ts"

export interface SenderIdentityOptions {
  /**
   * Per user name (exactly as authenticated), the allowed senders: `local@domain` for one
   * address, `@domain` for any address at that domain, `*` for any address. A user missing here
   * may use only the address equal to their user name, when the user name is an address.
   */
  readonly senders: Readonly<Record<string, ReadonlyArray<string>>>
  /**
   * A message whose header From or Sender holds an address its user may not send as:
   * `"reject"` it with 550 5.7.1 (default), or accept it `"unsigned"` (DKIM signers then never
   * sign it: they sign an authenticated user's message only when this check passed).
   */
  readonly forgedFrom?: "reject" | "unsigned"
}

const forged = (header: string, text: string): Verdict.Verdict =>
  Verdict.Reject({ code: 550, enhanced: "5.7.1", text: `Header ${header} rejected: ${text}` })

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
  const rules = new Map<string, ReadonlyArray<Senders.Pattern>>()
  for (const [user, entries] of Object.entries(options.senders)) {
    rules.set(user, entries.map((entry) => {
      const pattern = Senders.parsePattern(entry)
      if (pattern !== undefined) return pattern
      throw new Error(
        `sender-identity: invalid sender ${JSON.stringify(entry)} for user ${JSON.stringify(user)}; ` +
          `expected local@domain, @domain or *`
      )
    }))
  }
  const reject = options.forgedFrom !== "unsigned"

  // The configured entries and what the user's authentication backend granted (LDAP `mail`
  // attributes, an HTTP backend's `senders`); the user name itself only when neither says anything.
  const rulesFor = (user: string, notes: Notes.Notes): ReadonlyArray<Senders.Pattern> => {
    const configured = rules.get(user)
    const granted = Senders.grantedTo(notes, user)
    if (configured !== undefined) return granted.length === 0 ? configured : [...configured, ...granted]
    if (granted.length > 0) return granted
    const own = Senders.ownAddress(user)
    return own === undefined ? [] : [own]
  }

  /** What is wrong with the From and Sender of `user`'s message, naming the header; `undefined` when nothing. */
  const headerProblem = (user: string, notes: Notes.Notes, headers: Senders.Headers): { readonly header: string; readonly text: string } | undefined => {
    if (headers._tag === "Invalid") return { header: headers.header, text: `the field ${headers.reason}` }
    const notOwned = (header: string, mailboxes: ReadonlyArray<Mailbox>) => {
      const found = mailboxes.find((mailbox) => !Senders.allows(rulesFor(user, notes), mailbox))
      return found === undefined ? undefined : { header, text: `${Senders.printable(found.address)} is not owned by user ${user}` }
    }
    return notOwned("From", headers.from) ?? notOwned("Sender", headers.sender === undefined ? [] : [headers.sender])
  }

  return definePlugin({
    name: "sender-identity",
    // Runs for every message: untraced, as the bridge names each hook in its own span when tracing.
    mailFrom: Effect.fnUntraced(function*({ session, from }) {
      const user = session.user
      if (user === undefined || from === null) return Verdict.Continue
      if (Senders.allows(rulesFor(user, session.notes), from)) return Verdict.Continue
      return Verdict.Reject({
        code: 553,
        enhanced: "5.7.1",
        text: `Sender address rejected: not owned by user ${user}`
      })
    }),
    // The header From is what readers and DMARC see, and what DKIM signs for: an envelope check
    // alone lets alice send `From: CEO <ceo@example.com>`. Checked at end of data, where it arrives.
    data: Effect.fnUntraced(function*({ session, transaction, message }) {
      const user = session.user
      if (user === undefined) return Verdict.Continue
      const problem = headerProblem(user, session.notes, Senders.fromHeaders(message.headers))
      if (problem === undefined) {
        transaction.notes.set(Senders.HeaderFromAllowed, true)
        return Verdict.Continue
      }
      // Logged either way: a forged From is worth an operator's attention even when let through.
      yield* Effect.logWarning(
        `sender-identity: header ${problem.header} ${reject ? "refused" : "accepted unsigned"}: ${problem.text}`
      )
      return reject ? forged(problem.header, problem.text) : Verdict.Continue
    })
  })
}

export default senderIdentity
