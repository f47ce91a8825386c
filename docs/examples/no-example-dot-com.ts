/**
 * An example third-party plugin: refuses recipients at the domains RFC 2606 reserves for
 * documentation, which can never receive mail, instead of letting them bounce later.
 *
 * @example
 * // smtp-bridge.config.ts
 * import { noExampleDotCom } from "./no-example-dot-com.ts"
 * export default defineConfig({ plugins: [noExampleDotCom({ domains: ["example.com"] })] })
 */
import { Effect } from "effect"
import { definePlugin, Verdict } from "smtp-bridge"

export interface NoExampleDotComOptions {
  /** Domains refused, subdomains included. Default: example.com, example.net, example.org. */
  readonly domains?: ReadonlyArray<string>
}

export const noExampleDotCom = (options: NoExampleDotComOptions = {}) => {
  const domains = (options.domains ?? ["example.com", "example.net", "example.org"]).map((d) => d.toLowerCase())
  const refused = (domain: string): boolean => {
    const d = domain.toLowerCase()
    return domains.some((x) => d === x || d.endsWith(`.${x}`))
  }
  // definePlugin keeps the literal type: `noExampleDotCom().rcptTo` is known to be there. The
  // pipeline spans every hook (`plugin.no-example-dot-com.rcptTo`), so the hook is untraced.
  return definePlugin({
    name: "no-example-dot-com",
    rcptTo: Effect.fnUntraced(function*({ recipient }) {
      return refused(recipient.mailbox.domain)
        ? Verdict.reject(`Domain ${recipient.mailbox.domain} does not accept mail`, { code: 550, enhanced: "5.1.2" })
        : Verdict.Continue
    })
  })
}

export default noExampleDotCom
