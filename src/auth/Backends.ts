/**
 * The `auth` backends of the config (and `users`, a first htpasswd backend) as plugins, in order:
 * each is the built-in plugin of its type, its `auth` hook behind the result cache (when
 * `authCache` is set) and per-backend meters (`Instrument.ts`). Run in order, the first backend
 * that knows the user decides: htpasswd, LDAP and HTTP answer Continue for a user they do not
 * know, and the bridge answers 535 5.7.8 when none does.
 *
 * @example
 * await Backends.plugins({ users: undefined, auth: [{ type: "http", options: { url: "http://127.0.0.1:8080/auth" } }], authCache: undefined })
 */
import * as Duration from "effect/Duration"
import { authHtpasswd } from "../../plugins/auth-htpasswd/index.ts"
import type { Backend } from "../config/Auth.ts"
import * as AuthConfig from "../config/Auth.ts"
import type { BridgeConfig } from "../config/Config.ts"
import type { Plugin } from "../pipeline/Plugin.ts"
import * as Redact from "../util/Redact.ts"
import * as Cache from "./Cache.ts"
import * as Instrument from "./Instrument.ts"

type AuthFields = Pick<BridgeConfig, "users" | "auth" | "authCache">

/** `users` first (its shorthand), then `auth` in order. */
export const list = (config: Pick<AuthFields, "users" | "auth">): ReadonlyArray<Backend> => [
  ...(config.users === undefined ? [] : [{ type: "htpasswd" as const, options: { file: config.users } }]),
  ...config.auth
]

// Each backend's module is imported when a config names it: the LDAP client and jose (OAuth)
// cost start-up some 15 ms under Bun for configs that use neither.
const pluginOf = async (backend: Backend): Promise<Plugin<unknown>> => {
  switch (backend.type) {
    case "htpasswd":
      return authHtpasswd({ file: backend.options.file })
    case "ldap":
      return (await import("../../plugins/auth-ldap/index.ts")).authLdap(backend.options)
    case "http":
      return (await import("../../plugins/auth-http/index.ts")).authHttp(backend.options)
    case "dovecot":
      return (await import("../../plugins/auth-dovecot/index.ts")).authDovecot(backend.options)
    case "oauth":
      return (await import("../../plugins/auth-oauth/index.ts")).authOauth(backend.options)
  }
}

/** `ldap`, and `ldap#2` for a second LDAP backend: the metrics' and logs' name of each. */
export const labels = (backends: ReadonlyArray<Backend>): ReadonlyArray<string> => {
  const seen = new Map<string, number>()
  return backends.map((b) => {
    const n = (seen.get(b.type) ?? 0) + 1
    seen.set(b.type, n)
    return n === 1 ? b.type : `${b.type}#${n}`
  })
}

/** The backends as plugins, each with its own cache (new ones at each reload). */
export const plugins = (config: AuthFields): Promise<ReadonlyArray<Plugin<unknown>>> => {
  const backends = list(config)
  const names = labels(backends)
  const cache = config.authCache
  return Promise.all(backends.map(async (backend, i) =>
    Instrument.wrap(
      await pluginOf(backend),
      names[i]!,
      cache === undefined ? undefined : Cache.make({
        ttlMs: Duration.toMillis(cache.ttl),
        negativeTtlMs: Duration.toMillis(cache.negativeTtl),
        maxEntries: cache.maxEntries
      })
    )
  ))
}

/** The SASL mechanisms the backends bring: PLAIN and LOGIN with any password backend, Dovecot's, OAuth's. */
export const mechanisms = (backends: ReadonlyArray<Backend>): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (backends.some((b) => b.type !== "oauth")) out.push("PLAIN", "LOGIN")
  for (const b of backends) {
    if (b.type === "dovecot") out.push(b.options.mechanisms === undefined ? "Dovecot's" : b.options.mechanisms.join(" "))
    if (b.type === "oauth") out.push(...(b.options.mechanisms ?? ["OAUTHBEARER", "XOAUTH2"]))
  }
  return [...new Set(out)]
}

/**
 * One phrase for the start-up line and `check-config`: the backends in order, the mechanisms, the
 * cache. No secret: URLs are redacted, LDAP shows its host and base only.
 */
export const describe = (config: AuthFields): string => {
  const backends = list(config)
  if (backends.length === 0) return "off"
  const cache = config.authCache === undefined
    ? "cache off"
    : `cache ttl ${Duration.format(config.authCache.ttl)}, negative ${Duration.format(config.authCache.negativeTtl)}`
  return `backends ${backends.map((b) => AuthConfig.describe(b, Redact.url)).join(" -> ")}; mechanisms ${mechanisms(backends).join(" ")}; ${cache}`
}
