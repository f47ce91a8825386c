/**
 * `smtp-bridge serve`: the config from the flags and the file, then the bridge, serving until a
 * signal; SIGHUP and watched files reload it. Without @effect/cli: cli.ts runs it with the options
 * that `ConfigFlags.plain` or @effect/cli parsed (`Cli.ts`), so a plain `serve` line does not load
 * the command-line library.
 *
 * @example
 * Main.runMain(Serve.run(ConfigFlags.plain(["--listen", "127.0.0.1:2525"])!))
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Reload from "../admin/Reload.ts"
import type * as AuthConfig from "../config/Auth.ts"
import * as Bridge from "../Bridge.ts"
import type { BridgeConfig } from "../config/Config.ts"
import * as Load from "../config/Load.ts"
import type { ConfigError } from "../config/Resolve.ts"
import * as Log from "../observability/Log.ts"
import type { ConfigOptions } from "./ConfigFlags.ts"
import * as Files from "./Files.ts"

export const given = <K extends string, A>(key: K, value: Option.Option<A>): { [P in K]?: A } =>
  (Option.isSome(value) ? { [key]: value.value } : {}) as { [P in K]?: A }

const nonEmpty = <K extends string, A>(key: K, values: ReadonlyArray<A>): { [P in K]?: ReadonlyArray<A> } =>
  (values.length > 0 ? { [key]: values } : {}) as { [P in K]?: ReadonlyArray<A> }

// Sizes may be written "25MB"; plain digits are bytes.
const size = (text: string): number | string => (/^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : text)

/** `DOMAIN:SELECTOR:KEYFILE`, split at the first two colons (the path may hold more). */
const dkimKey = (text: string) => {
  const [domain = "", selector = "", ...rest] = text.split(":")
  return { domain, selector, keyFile: rest.join(":") }
}

/** `CIDR=SENDER` flags, grouped by network. */
const trustedFrom = (flags: ReadonlyArray<string>): Record<string, Array<string>> => {
  const out: Record<string, Array<string>> = {}
  for (const flag of flags) {
    const eq = flag.indexOf("=")
    const network = eq < 0 ? flag : flag.slice(0, eq)
    ;(out[network] ??= []).push(eq < 0 ? "" : flag.slice(eq + 1))
  }
  return out
}

/** `--auth URL ...` in order, then the OAuth backend that `--oauth-*` describe (its other options from the file). */
const authFlags = (o: ConfigOptions): Pick<Load.Flags, "auth"> => {
  const oauth = { ...given("jwksUrl", o.oauthJwks), ...given("issuer", o.oauthIssuer), ...given("audience", o.oauthAudience) }
  const entries: Array<AuthConfig.BackendInput> = [...o.auth, ...(Object.keys(oauth).length > 0 ? [{ type: "oauth" as const, ...oauth }] : [])]
  return entries.length > 0 ? { auth: entries } : {}
}

type HookStage = "connect" | "helo" | "mailFrom" | "rcptTo" | "data"

/** `STAGE=URL`; the stage is checked by the config schema, which names a wrong one. */
const hookFlag = (flag: string): { readonly stage: HookStage; readonly url: string } => {
  const eq = flag.indexOf("=")
  return { stage: (eq < 0 ? "" : flag.slice(0, eq)) as HookStage, url: eq < 0 ? flag : flag.slice(eq + 1) }
}

/** Only the flags actually given, so that the config file keeps everything else. */
export const flagsOf = (o: ConfigOptions): Load.Flags => {
  const tls = { ...given("cert", o.tlsCert), ...given("key", o.tlsKey) }
  const limits = {
    ...given("maxMessageSize", Option.map(o.maxSize, size)),
    // Not a number gives NaN, which the config check rejects naming the field.
    ...given("maxRecipients", Option.map(o.maxRecipients, Number)),
    ...given("maxConnectionsPerNetwork", Option.map(o.maxConnectionsPerNetwork, Number)),
    ...given("ipv4NetworkPrefix", Option.map(o.ipv4NetworkPrefix, Number)),
    ...given("ipv6NetworkPrefix", Option.map(o.ipv6NetworkPrefix, Number))
  }
  return {
    ...nonEmpty("listen", o.listen),
    ...nonEmpty("listenTls", o.listenTls),
    ...given("hostname", o.hostname),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
    ...given("users", o.users),
    ...authFlags(o),
    ...(o.allowInsecureAuth ? { allowInsecureAuth: true } : {}),
    ...nonEmpty("trust", o.trust),
    ...given("maildir", o.maildir),
    ...given("relay", o.relay),
    ...given("webhook", o.webhook),
    ...given("webhookSecret", o.webhookSecret),
    // With --spool-min-free the spool is an object; a config file's spool object keeps its other fields.
    ...(Option.isSome(o.spoolMinFree)
      ? { spool: { ...given("dir", o.spool), minFreeSpace: size(o.spoolMinFree.value) } }
      : given("spool", o.spool)),
    ...nonEmpty("proxyProtocol", o.proxyProtocol),
    ...(o.verify ? { verify: true } : {}),
    ...(o.dkimSignKeys.length > 0 || o.dkimTrustedFrom.length > 0
      ? { dkimSign: { ...nonEmpty("keys", o.dkimSignKeys.map(dkimKey)), ...(o.dkimTrustedFrom.length > 0 ? { trustedFrom: trustedFrom(o.dkimTrustedFrom) } : {}) } }
      : {}),
    ...(o.dns.length > 0 ? { dns: { servers: o.dns } } : {}),
    ...(o.rateLimit.length > 0 || Option.isSome(o.redis)
      ? { rateLimit: { ...nonEmpty("limits", o.rateLimit), ...given("redis", o.redis) } }
      : {}),
    ...given("policy", o.policy),
    ...given("rspamd", o.rspamd),
    // Merged into the file's `milter`, which keeps its timeouts and default action.
    ...(o.milter.length > 0 ? { milter: { milters: o.milter } } : {}),
    ...(o.hook.length > 0 ? { httpHooks: { hooks: o.hook.map(hookFlag) } } : {}),
    ...given("admin", o.admin),
    ...given("adminTokenFile", o.adminTokenFile),
    // From the environment, not a flag: the process list shows every argument to local users.
    ...(Option.isNone(o.adminTokenFile) && process.env.SMTP_BRIDGE_ADMIN_TOKEN !== undefined
      ? { adminToken: process.env.SMTP_BRIDGE_ADMIN_TOKEN }
      : {}),
    // Merged into the file's `telemetry`, which keeps its serviceName and headers.
    ...(Option.isSome(o.otlpEndpoint) ? { telemetry: { otlpEndpoint: o.otlpEndpoint.value } } : {}),
    ...given("logFormat", o.logFormat),
    ...(o.watchConfig ? { watchConfig: true } : {}),
    // The rate is checked by the schema (a word becomes NaN, refused naming capture.sample).
    ...(Option.isSome(o.capture)
      ? {
        capture: {
          dir: o.capture.value,
          ...given("sample", Option.map(o.captureSample, Number)),
          ...given("maxMessageSize", Option.map(o.captureMaxSize, size)),
          ...(o.captureHeadersOnly ? { headersOnly: true } : {})
        }
      }
      : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {})
  }
}

/** The config, with every file it names loaded and checked (`Files.ts`). */
export const loadConfig = (o: ConfigOptions, fresh = false): Effect.Effect<BridgeConfig, ConfigError> =>
  Load.load({ ...given("file", o.config), flags: flagsOf(o), fresh }).pipe(Effect.tap(Files.check))

/**
 * SIGHUP or a watched file's change: the config file and flags again, then the users and TLS
 * files; a bad one changes nothing. Gives the config applied, or undefined when refused.
 */
const reload = (o: ConfigOptions, running: Bridge.Running, request: Reload.Request) =>
  Effect.gen(function*() {
    yield* Effect.logInfo(`${request}: reloading the config, users and TLS files`)
    const refused = (message: string) =>
      Effect.as(Effect.logError(`reload refused, the running config stays active: ${message}`), undefined)
    const next = yield* Effect.either(loadConfig(o, true))
    if (Either.isLeft(next)) return yield* refused(next.left.message)
    return yield* running.reload(next.right).pipe(
      Effect.zipRight(Effect.logInfo("reload done: new sessions use the new config; open sessions continue unchanged")),
      Effect.as(next.right),
      Effect.catchAll((e) => refused(e.message))
    )
  })

/** What `serve` runs once its options are parsed. */
export const run = (o: ConfigOptions) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(o)
    // Serves until SIGINT/SIGTERM interrupts us; closing the scope drains gracefully.
    yield* Effect.scoped(Effect.gen(function*() {
      // SIGHUP and watched files' changes feed one queue, so reloads run one at a time.
      const requests = yield* Reload.requests
      // Before the server starts: SIGHUP's default action would end the process.
      yield* Reload.signals("SIGHUP", requests)
      const watcher = yield* Reload.watch(requests)
      const configFile = Option.getOrUndefined(o.config)
      yield* watcher.set(Reload.watchedFiles(config, configFile))
      const running = yield* Bridge.run(config)
      yield* Queue.take(requests).pipe(
        Effect.flatMap((request) => reload(o, running, request)),
        // The new config may name other users or TLS files, or turn watching off.
        Effect.flatMap((applied) => (applied === undefined ? Effect.void : watcher.set(Reload.watchedFiles(applied, configFile)))),
        Effect.forever
      )
    })).pipe(Log.withFormat(Log.formatFor(config.logFormat)))
  })
