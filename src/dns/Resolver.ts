/**
 * The `Dns` service on `node:dns`'s resolver: the system's servers by default, or the configured
 * ones, each lookup bounded by a timeout. DNS failures are values (`DnsError`), never crashes.
 */
import { Effect, Layer } from "effect"
import * as NodeDns from "node:dns"
import { Dns, DnsError, type Resolver } from "./Dns.ts"

export interface ResolverOptions {
  /** `host` or `host:port` (IPv6 as `[::1]:53`); empty means the system's resolvers. */
  readonly servers?: ReadonlyArray<string>
  /** Per query, in milliseconds (default 5000). */
  readonly timeoutMs?: number
}

const notFound = new Set(["ENOTFOUND", "ENODATA", "NXDOMAIN"])

export const make = (options: ResolverOptions = {}): Resolver => {
  const resolver = new NodeDns.promises.Resolver({ timeout: options.timeoutMs ?? 5000, tries: 2 })
  if (options.servers !== undefined && options.servers.length > 0) resolver.setServers([...options.servers])
  const query = <A>(rrtype: string, name: string, run: () => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (e) => {
        const code = (e as { code?: string }).code ?? "EUNKNOWN"
        return new DnsError({
          reason: notFound.has(code) ? "NotFound" : "Temporary",
          name,
          rrtype,
          message: `${rrtype} ${name}: ${code}`
        })
      }
    })
  const lookup = (name: string, rrtype: string): Promise<unknown> => {
    switch (rrtype) {
      case "TXT":
        return resolver.resolveTxt(name)
      case "MX":
        return resolver.resolveMx(name)
      case "A":
        return resolver.resolve4(name)
      case "AAAA":
        return resolver.resolve6(name)
      case "PTR":
        return resolver.resolvePtr(name)
      case "CNAME":
        return resolver.resolveCname(name)
      default:
        return resolver.resolve(name, rrtype)
    }
  }
  return {
    txt: (name) => query("TXT", name, () => resolver.resolveTxt(name)),
    mx: (name) => query("MX", name, () => resolver.resolveMx(name)),
    a: (name) => query("A", name, () => resolver.resolve4(name)),
    aaaa: (name) => query("AAAA", name, () => resolver.resolve6(name)),
    ptr: (address) => query("PTR", address, () => resolver.reverse(address)),
    mailauth: lookup
  }
}

export const layer = (options: ResolverOptions = {}): Layer.Layer<Dns> => Layer.sync(Dns, () => make(options))
