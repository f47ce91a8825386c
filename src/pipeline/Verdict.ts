/**
 * What a plugin hook answers. Plugins run in order; the first verdict other than `Continue` wins.
 *
 * @example
 * import { Verdict } from "smtp-bridge"
 * Verdict.reject("No mail from this network", { code: 554, enhanced: "5.7.1" })
 */
import * as Data from "effect/Data"

export type Verdict = Data.TaggedEnum<{
  /** No opinion: the next plugin, then the bridge's own policy, decides. */
  Continue: {}
  /** Accept this step. On `auth`, `identity` is the authenticated user. */
  Accept: { readonly identity?: string | undefined }
  /** Permanent refusal (5xx). */
  Reject: { readonly code: number; readonly enhanced: string; readonly text: string }
  /** Temporary refusal (4xx): the client should retry later. */
  Defer: { readonly code: number; readonly enhanced: string; readonly text: string }
  /** Reply, then close the connection. */
  Disconnect: { readonly code: number; readonly enhanced: string; readonly text: string }
}>

const V = Data.taggedEnum<Verdict>()

export const { Continue: ContinueOf, Accept, Reject, Defer, Disconnect, $is: is, $match: match } = V

/** The singleton `Continue` verdict. */
export const Continue: Verdict = V.Continue()

export const accept = (options: { readonly identity?: string } = {}): Verdict => V.Accept({ identity: options.identity })

/** A 5xx refusal; defaults to `550 5.7.1`. */
export const reject = (text: string, options: { readonly code?: number; readonly enhanced?: string } = {}): Verdict =>
  V.Reject({ code: options.code ?? 550, enhanced: options.enhanced ?? "5.7.1", text })

/** A 4xx refusal; defaults to `451 4.7.1`. */
export const defer = (text: string, options: { readonly code?: number; readonly enhanced?: string } = {}): Verdict =>
  V.Defer({ code: options.code ?? 451, enhanced: options.enhanced ?? "4.7.1", text })

/** Reply and close; defaults to `421 4.7.0`. */
export const disconnect = (text: string, options: { readonly code?: number; readonly enhanced?: string } = {}): Verdict =>
  V.Disconnect({ code: options.code ?? 421, enhanced: options.enhanced ?? "4.7.0", text })

const enhancedCode = /^[245]\.\d{1,3}\.\d{1,3}$/

/**
 * Why `value` is not a verdict the bridge can act on, or undefined when it is one: hooks are
 * often plain JavaScript, and a missing `return`, a reply code outside its class (a Reject with
 * 250) or an enhanced code of another class would otherwise reach the client as a broken reply.
 * Reject must be 5xx; Defer 4xx; Disconnect 4xx or 5xx; the enhanced code of the same class.
 */
export const problem = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null || !("_tag" in value)) return `not a verdict: ${String(value)}`
  const v = value as { readonly _tag: unknown; readonly code?: unknown; readonly enhanced?: unknown; readonly text?: unknown }
  switch (v._tag) {
    case "Continue":
    case "Accept":
      return undefined
    case "Reject":
    case "Defer":
    case "Disconnect": {
      const code = v.code
      if (typeof code !== "number" || !Number.isInteger(code)) return `${v._tag} without a numeric code`
      const low = v._tag === "Reject" ? 500 : 400
      const high = v._tag === "Defer" ? 499 : 599
      if (code < low || code > high) return `${v._tag} with code ${code} (must be ${low}-${high})`
      if (typeof v.enhanced !== "string" || !enhancedCode.test(v.enhanced) || v.enhanced[0] !== String(code)[0]) {
        return `${v._tag} ${code} with enhanced code ${String(v.enhanced)}`
      }
      if (typeof v.text !== "string") return `${v._tag} without a text`
      return undefined
    }
    default:
      return `unknown verdict ${String(v._tag)}`
  }
}
