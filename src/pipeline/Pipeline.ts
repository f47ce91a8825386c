/**
 * Runs plugin hooks in configured order. The first verdict other than `Continue` wins; a hook
 * that fails, dies or times out counts as `Defer 451 4.3.0`, is logged with the plugin's name,
 * and never takes the connection or the process down.
 */
import { Cause, type Context, Data, Duration, Effect, Fiber, type Scope } from "effect"
import type {
  AuthContext, AuthResultContext, ConnectContext, DataContext, DeliveredContext, DisconnectContext, HeloContext, Hooks,
  MailFromContext, Plugin, RcptToContext, Route, RouteContext, Services, VerdictHook
} from "./Plugin.ts"
import * as Verdict from "./Verdict.ts"

interface VerdictContexts {
  readonly connect: ConnectContext
  readonly helo: HeloContext
  readonly auth: AuthContext
  readonly mailFrom: MailFromContext
  readonly rcptTo: RcptToContext
  readonly data: DataContext
}

export interface Outcome {
  readonly verdict: Verdict.Verdict
  /** The plugin that decided, if any. */
  readonly plugin: string | undefined
}

interface Loaded {
  readonly name: string
  readonly timeout: Duration.Duration
  readonly hooks: Hooks
}

export interface Pipeline {
  readonly plugins: ReadonlyArray<{ readonly name: string; readonly hooks: ReadonlyArray<keyof Hooks> }>
  readonly has: (hook: keyof Hooks) => boolean
  readonly run: <H extends VerdictHook>(hook: H, ctx: VerdictContexts[H]) => Effect.Effect<Outcome>
  readonly route: (ctx: RouteContext) => Effect.Effect<ReadonlyArray<Route> | undefined>
  readonly notify: {
    (hook: "authResult", ctx: AuthResultContext): Effect.Effect<void>
    (hook: "delivered", ctx: DeliveredContext): Effect.Effect<void>
    (hook: "disconnect", ctx: DisconnectContext): Effect.Effect<void>
  }
}

const failed = Verdict.Defer({ code: 451, enhanced: "4.3.0", text: "Temporary failure, please try again later" })
const defaultTimeout = Duration.seconds(30)

type Guard = <A>(plugin: Loaded, hook: string, effect: Effect.Effect<A, unknown, Services>, fallback: A) => Effect.Effect<A>

/**
 * Runs a hook in a child fiber with a plain timer as its deadline: cheaper on the hot path than
 * `Effect.timeout`, which races the hook against a second, sleeping fiber.
 */
const deadline = <A>(effect: Effect.Effect<A, unknown>, timeout: Duration.Duration): Effect.Effect<A, unknown> =>
  Effect.flatMap(Effect.fork(effect), (fiber) =>
    Effect.async<A, unknown>((resume) => {
      const timer = setTimeout(() => {
        resume(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(`timed out after ${Duration.format(timeout)}`)))
      }, Duration.toMillis(timeout))
      fiber.addObserver((exit) => {
        clearTimeout(timer)
        resume(exit)
      })
      return Effect.suspend(() => {
        clearTimeout(timer)
        return Fiber.interrupt(fiber)
      })
    }))

const guardWith = (services: Context.Context<Services>): Guard => (plugin, hook, effect, fallback) =>
  effect.pipe(
    Effect.provide(services),
    (e) => deadline(e, plugin.timeout),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.logWarning(`plugin ${plugin.name} failed in ${hook}`, Cause.pretty(cause)).pipe(
          Effect.annotateLogs({ plugin: plugin.name, hook }),
          Effect.as(fallback)
        )
    ),
    Effect.withSpan(`plugin.${plugin.name}.${hook}`)
  )

/** Loads the plugins (running each `setup` in the server's scope) and returns the runner. */
export const make = (plugins: ReadonlyArray<Plugin>): Effect.Effect<Pipeline, PluginSetupError, Scope.Scope | Services> =>
  Effect.gen(function*() {
    const services = yield* Effect.context<Services>()
    const loaded: Array<Loaded> = []
    for (const plugin of plugins) {
      const extra = plugin.setup === undefined
        ? {}
        : yield* Effect.mapError(plugin.setup, (cause) => new PluginSetupError({ plugin: plugin.name, message: describe(cause) }))
      const { name: _n, timeout, setup: _s, ...own } = plugin
      loaded.push({
        name: plugin.name,
        timeout: timeout === undefined ? defaultTimeout : Duration.decode(timeout),
        hooks: { ...own, ...extra }
      })
    }
    return fromLoaded(loaded, guardWith(services))
  })

const fromLoaded = (loaded: ReadonlyArray<Loaded>, guard: Guard): Pipeline => {
  const with_ = (hook: keyof Hooks) => loaded.filter((p) => p.hooks[hook] !== undefined)
  const byHook = new Map<keyof Hooks, ReadonlyArray<Loaded>>()
  for (const hook of ["connect", "helo", "auth", "authResult", "mailFrom", "rcptTo", "data", "route", "delivered", "disconnect"] as const) {
    byHook.set(hook, with_(hook))
  }
  const run = <H extends VerdictHook>(hook: H, ctx: VerdictContexts[H]): Effect.Effect<Outcome> => {
    const list = byHook.get(hook) ?? []
    if (list.length === 0) return Effect.succeed({ verdict: Verdict.Continue, plugin: undefined })
    return Effect.gen(function*() {
      for (const plugin of list) {
        const fn = plugin.hooks[hook] as (c: VerdictContexts[H]) => Effect.Effect<Verdict.Verdict, unknown, Services>
        const verdict = yield* guard(plugin, hook, Effect.suspend(() => fn(ctx)), failed)
        if (verdict._tag !== "Continue") return { verdict, plugin: plugin.name }
      }
      return { verdict: Verdict.Continue, plugin: undefined }
    })
  }
  const route = (ctx: RouteContext): Effect.Effect<ReadonlyArray<Route> | undefined> =>
    Effect.gen(function*() {
      for (const plugin of byHook.get("route") ?? []) {
        const routes = yield* guard(plugin, "route", Effect.suspend(() => plugin.hooks.route!(ctx)), undefined)
        if (routes !== undefined) return routes
      }
      return undefined
    })
  type NotifyContext = AuthResultContext | DeliveredContext | DisconnectContext
  const notify = (hook: "authResult" | "delivered" | "disconnect", ctx: NotifyContext): Effect.Effect<void> =>
    Effect.forEach(byHook.get(hook) ?? [], (plugin) => {
      const fn = plugin.hooks[hook] as (c: NotifyContext) => Effect.Effect<void, unknown, Services>
      return guard(plugin, hook, Effect.suspend(() => fn(ctx)), undefined)
    }, { discard: true })
  return {
    plugins: loaded.map((p) => ({ name: p.name, hooks: Object.keys(p.hooks).filter((k) => p.hooks[k as keyof Hooks] !== undefined) as Array<keyof Hooks> })),
    has: (hook) => (byHook.get(hook) ?? []).length > 0,
    run,
    route,
    notify: notify as Pipeline["notify"]
  }
}

const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

export class PluginSetupError extends Data.TaggedError("PluginSetupError")<{
  readonly plugin: string
  readonly message: string
}> {}
