/**
 * mailauth-verify: checks SPF, DKIM, DMARC and ARC (and BIMI, when asked) with mailauth for the
 * client's address, HELO name and envelope sender; writes one RFC 8601 Authentication-Results
 * field and drops forged ones that claim this bridge's authserv-id; applies a policy per result;
 * and leaves the results in the transaction's notes (`MailauthVerify.Results`) for later plugins.
 *
 * @example
 * import { mailauthVerify } from "./plugins/mailauth-verify/index.ts"
 * mailauthVerify({ policy: { dmarcReject: "reject", spfFail: "tag" } })
 */
import * as Effect from "effect/Effect"
import { definePlugin, Dns, Mailauth, Notes, Relay, Reply, Verdict } from "../../src/index.ts"
import type { Plugin, SessionInfo } from "../../src/index.ts"
import type { Action, OptionsInput, Policy } from "./options.ts"

export type { Action, Policy } from "./options.ts"
/** The options as a user writes them; their schema is in `options.ts`. */
export type MailauthVerifyOptions = OptionsInput

/** The results of this transaction's checks, for later plugins (routing, rate limits, filters). */
export const Results: Notes.Key<Mailauth.Authentication> = Notes.key<Mailauth.Authentication>("mailauth.results")

export const defaultPolicy: Required<Policy> = {
  spfFail: "tag",
  spfSoftfail: "accept",
  dmarcReject: "tag",
  dmarcQuarantine: "tag",
  noValidDkim: "accept",
  temperror: "accept"
}

// RFC 2045 tspecials end a token; so do white space and controls.
const TSPECIALS = "()<>@,;:\\\"/[]?="

/**
 * The authserv-id an Authentication-Results value claims, as RFC 8601 §2.2 reads it: past CFWS
 * (comments nest and hold quoted-pairs, RFC 5322 §3.2.2), a token or a quoted-string; compared as a
 * domain name, so lower case and without a trailing dot. `undefined` when the value does not
 * parse (an unclosed comment or quote, nothing before the first `;`). A hand-written scanner in one
 * pass, so a hostile value costs linear time.
 */
export const authservIdOf = (value: string): string | undefined => {
  let i = 0
  // CFWS: white space (folding is already undone) and comments, nested.
  for (;;) {
    while (i < value.length && (value[i] === " " || value[i] === "\t" || value[i] === "\r" || value[i] === "\n")) i++
    if (value[i] !== "(") break
    let depth = 0
    for (; i < value.length; i++) {
      const c = value[i]
      if (c === "\\") i++
      else if (c === "(") depth++
      else if (c === ")" && --depth === 0) break
    }
    if (i >= value.length) return undefined
    i++
  }
  let id = ""
  if (value[i] === "\"") {
    for (i++; i < value.length && value[i] !== "\""; i++) id += value[i] === "\\" ? value[++i] ?? "" : value[i]
    if (i >= value.length) return undefined
    // A quoted id with blanks around it would be trimmed by a lenient reader downstream.
    id = id.trim()
  } else {
    for (; i < value.length; i++) {
      const c = value.charCodeAt(i)
      if (c <= 32 || c === 127 || TSPECIALS.includes(value[i]!)) break
      id += value[i]
    }
  }
  id = id.toLowerCase().replace(/\.$/, "")
  return id === "" ? undefined : id
}

/**
 * Whether an Authentication-Results value claims `ours` (RFC 8601 §5: such a field from outside
 * is a forgery and goes). A value that does not parse claims it when it names it anywhere: a
 * lenient reader downstream might take it for ours, and dropping it costs nothing.
 */
export const claimsAuthservId = (value: string, ours: string): boolean => {
  const own = ours.toLowerCase().replace(/\.$/, "")
  const id = authservIdOf(value)
  return id === undefined ? value.toLowerCase().includes(own) : id === own
}

interface Finding {
  readonly action: Action
  /** Why, in words a sender can act on. */
  readonly text: string
  /** For X-Mailauth-Warning. */
  readonly tag: string
  readonly enhanced: { readonly reject: string; readonly defer: string }
}

/** Each policy condition the results meet, most specific first. */
export const findings = (auth: Mailauth.Authentication, policy: Required<Policy>): ReadonlyArray<Finding> => {
  const out: Array<Finding> = []
  const dmarc = auth.dmarc
  if (dmarc !== undefined && dmarc.result === "fail" && dmarc.policy !== "none") {
    out.push({
      action: dmarc.policy === "reject" ? policy.dmarcReject : policy.dmarcQuarantine,
      // The domain comes from the header From: a reply repeats it short and printable.
      text: `DMARC policy of ${dmarc.domain === undefined ? "the From domain" : Reply.echo(dmarc.domain)} (p=${dmarc.policy}) rejects this message`,
      tag: `dmarc=fail policy=${dmarc.policy}`,
      enhanced: { reject: "5.7.1", defer: "4.7.1" }
    })
  }
  const spf = auth.spf
  if (spf?.result === "fail" || spf?.result === "softfail") {
    out.push({
      action: spf.result === "fail" ? policy.spfFail : policy.spfSoftfail,
      text: `SPF check failed: ${Reply.echo(spf.domain)} does not designate this client as a permitted sender`,
      tag: `spf=${spf.result} smtp.mailfrom=${spf.domain}`,
      enhanced: { reject: "5.7.23", defer: "4.7.23" }
    })
  }
  if (!auth.dkim.some((d) => d.result === "pass")) {
    out.push({
      action: policy.noValidDkim,
      text: "No valid DKIM signature found",
      tag: "dkim=none-valid",
      enhanced: { reject: "5.7.20", defer: "4.7.20" }
    })
  }
  const temp = [spf?.result, dmarc?.result, ...auth.dkim.map((d) => d.result)].includes("temperror")
  if (temp) {
    out.push({
      action: policy.temperror,
      text: "Temporary DNS failure while authenticating this message, try again later",
      tag: "temperror",
      enhanced: { reject: "5.7.0", defer: "4.7.0" }
    })
  }
  return out
}

/** The verdict for the findings: the first reject, else the first defer, else continue. */
export const verdictOf = (found: ReadonlyArray<Finding>): Verdict.Verdict => {
  const reject = found.find((f) => f.action === "reject")
  if (reject !== undefined) return Verdict.reject(reject.text, { code: 550, enhanced: reject.enhanced.reject })
  const defer = found.find((f) => f.action === "defer")
  if (defer !== undefined) return Verdict.defer(defer.text, { code: 451, enhanced: defer.enhanced.defer })
  return Verdict.Continue
}

const skip = (session: SessionInfo, options: MailauthVerifyOptions): boolean =>
  (options.skipAuthenticated !== false && session.user !== undefined) ||
  (options.skipTrusted !== false && session.notes.get(Relay.Trusted) === true)

/**
 * Creates the plugin. With the defaults it only reports: one Authentication-Results field, and
 * `X-Mailauth-Warning` for DMARC and SPF failures; it rejects nothing.
 *
 * @example
 * // Enforce DMARC: refuse p=reject failures, defer on DNS trouble.
 * mailauthVerify({ skipTrusted: false, policy: { dmarcReject: "reject", dmarcQuarantine: "tag", temperror: "defer" } })
 */
export const mailauthVerify = (options: MailauthVerifyOptions = {}): Plugin => {
  const policy: Required<Policy> = { ...defaultPolicy, ...options.policy }
  Mailauth.preload()
  return definePlugin({
    name: "mailauth-verify",
    // DNS: each lookup in flight has a UDP socket of its own; a check keeps at most this many at once.
    files: { perSession: Mailauth.lookupsInFlight },
    mailFrom: Effect.fnUntraced(function*({ session, from }) {
      if (options.spfAtMailFrom !== true || skip(session, options)) return Verdict.Continue
      const dns = yield* Dns
      const spf = yield* Mailauth.spf({
        ip: session.remoteAddress,
        helo: session.helo?.name,
        sender: from?.address,
        authservId: options.authservId ?? session.hostname,
        dns
      })
      const found: Array<Finding> = []
      if (spf.result === "fail" || spf.result === "softfail") {
        found.push({
          action: spf.result === "fail" ? policy.spfFail : policy.spfSoftfail,
          text: `SPF check failed: ${Reply.echo(spf.domain)} does not designate this client as a permitted sender`,
          tag: "",
          enhanced: { reject: "5.7.23", defer: "4.7.23" }
        })
      }
      if (spf.result === "temperror") {
        found.push({
          action: policy.temperror,
          text: `Temporary DNS failure checking SPF for ${Reply.echo(spf.domain)}, try again later`,
          tag: "",
          enhanced: { reject: "5.7.24", defer: "4.7.24" }
        })
      }
      return verdictOf(found)
    }),
    data: Effect.fnUntraced(function*({ session, transaction, message, addHeader, removeHeader }) {
      const authservId = options.authservId ?? session.hostname
      // A field claiming our own id is a forgery whether or not the checks run: a sender skipped
      // because it authenticated could otherwise hand downstream filters a `dkim=pass` in our
      // name. Others' results are theirs to report (RFC 8601 §5).
      removeHeader("Authentication-Results", (value) => claimsAuthservId(value, authservId))
      if (skip(session, options)) return Verdict.Continue
      const dns = yield* Dns
      const auth = yield* Mailauth.authenticate(message.inMemory?.() ?? message.stream(), {
        ip: session.remoteAddress,
        helo: session.helo?.name,
        sender: transaction.mailFrom?.address,
        authservId,
        dns,
        ...(options.bimi !== undefined ? { bimi: options.bimi } : {}),
        ...(options.minBitLength !== undefined ? { minBitLength: options.minBitLength } : {})
      })
      transaction.notes.set(Results, auth)
      const found = findings(auth, policy)
      const verdict = verdictOf(found)
      if (verdict._tag !== "Continue") return verdict
      const tags = found.filter((f) => f.action === "tag").map((f) => f.tag)
      if (tags.length > 0) addHeader("X-Mailauth-Warning", tags.join("; "))
      addHeader("Authentication-Results", auth.authenticationResults)
      return Verdict.Continue
    })
  })
}

export default mailauthVerify
