/**
 * Runs plugin hooks in configured order. The first verdict other than `Continue` wins; a hook
 * that fails, dies or times out counts as `Defer 451 4.3.0`, is logged with the plugin's name,
 * and never takes the connection or the process down.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Tracing from "../util/Tracing.ts"
import type {
  AuthAttemptContext, AuthContext, AuthResultContext, ConnectContext, DataContext, DeliveredContext, DisconnectContext, Files, HeloContext, Hooks,
  MailFromContext, Plugin, RcptToContext, Route, RouteContext, SaslContext, SaslExchange, SaslStep, Services, VerdictHook
} from "./Plugin.ts"
import { PluginError } from "./Plugin.ts"
import type { SessionInfo } from "./Session.ts"
import * as Verdict from "./Verdict.ts"

interface VerdictContexts {
  readonly connect: ConnectContext
  readonly helo: HeloContext
  readonly auth: AuthContext
  readonly authAttempt: AuthAttemptContext
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
  readonly files: Files | undefined
  /** The bridge's services and those the plugins up to this one provide. */
  readonly services: Context.Context<Services>
}

export interface Pipeline {
  /** Each plugin's name, hooks and the descriptors it says it opens of its own. */
  readonly plugins: ReadonlyArray<{ readonly name: string; readonly hooks: ReadonlyArray<keyof Hooks>; readonly files: Files | undefined }>
  readonly has: (hook: keyof Hooks) => boolean
  readonly run: <H extends VerdictHook>(hook: H, ctx: VerdictContexts[H]) => Effect.Effect<Outcome>
  readonly route: (ctx: RouteContext) => Effect.Effect<ReadonlyArray<Route> | undefined>
  /** The plugins' SASL mechanisms for this session, in capitals, without duplicates nor the bridge's own PLAIN and LOGIN. */
  readonly mechanisms: (session: SessionInfo) => ReadonlyArray<string>
  /**
   * Starts an exchange with the first plugin offering `mechanism`. Every step runs under the
   * plugin's guard: one that fails, dies or times out ends the exchange as a failed `auth` hook
   * does (`Done` with Defer 451 4.3.0), so the session goes on.
   */
  readonly sasl: (ctx: SaslContext) => Effect.Effect<Exchange>
  readonly notify: {
    (hook: "authResult", ctx: AuthResultContext): Effect.Effect<void>
    (hook: "delivered", ctx: DeliveredContext): Effect.Effect<void>
    (hook: "disconnect", ctx: DisconnectContext): Effect.Effect<void>
  }
}

/** An exchange as the server drives it: each step guarded, `abort` never failing. */
export interface Exchange {
  /** The plugin running it, for logs. */
  readonly plugin: string | undefined
  readonly step: (response: string | undefined) => Effect.Effect<SaslStep>
  readonly abort: Effect.Effect<void>
}

const failed = Verdict.Defer({ code: 451, enhanced: "4.3.0", text: "Temporary failure, please try again later" })
const defaultTimeout = Duration.seconds(30)
const unavailable = Verdict.Defer({ code: 454, enhanced: "4.7.0", text: "Authentication mechanism not available now, try again later" })

type Guard = <A>(plugin: Loaded, hook: string, run: () => Effect.Effect<A, unknown, Services>, fallback: A) => Effect.Effect<A>

/** Waits for a hook that did not answer at once, with a plain timer as its deadline. */
const within = <A>(child: Fiber.RuntimeFiber<A, unknown>, timeout: Duration.Duration): Effect.Effect<Exit.Exit<A, unknown>> =>
  Effect.async<Exit.Exit<A, unknown>>((resume) => {
    const settled = (exit: Exit.Exit<A, unknown>) => {
      clearTimeout(timer)
      resume(Effect.succeed(exit))
    }
    const timer = setTimeout(() => {
      child.removeObserver(settled)
      resume(Effect.as(Fiber.interrupt(child), Exit.fail(`timed out after ${Duration.format(timeout)}`)))
    }, Duration.toMillis(timeout))
    child.addObserver(settled)
    return Effect.suspend(() => {
      clearTimeout(timer)
      child.removeObserver(settled)
      return Fiber.interrupt(child)
    })
  })

/**
 * Runs a hook on a child fiber that starts at once, on the caller's stack: a hook that answers
 * without waiting, as most do, is done before any timer or scheduling is needed. Only a hook that
 * waits gets a deadline, a plain timer that interrupts it (cheaper than `Effect.timeout`, which
 * races a second fiber). The child has the caller's fiber refs (log annotations, loggers, tracer)
 * and, as its context, the services hooks may use and the caller's span: nothing is merged per
 * call. The hook's span is made only when a tracer collects it (`Tracing.ts`).
 */
const guard: Guard = (plugin, hook, run, fallback) =>
  Effect.withFiberRuntime<typeof fallback>((parent, status) => {
    const span = parent.currentSpan
    const context = span === undefined ? plugin.services : Context.add(plugin.services, Tracer.ParentSpan, span)
    const body = Effect.suspend(run)
    const traced = Tracing.collected(parent.currentTracer) ? Effect.withSpan(body, `plugin.${plugin.name}.${hook}`) : body
    const child = Runtime.runFork(Runtime.make({ context, fiberRefs: parent.getFiberRefs(), runtimeFlags: status.runtimeFlags }), traced)
    const exit = child.unsafePoll()
    return exit !== null ? settle(plugin, hook, exit, fallback) : Effect.flatMap(within(child, plugin.timeout), (e) => settle(plugin, hook, e, fallback))
  })

/** A failed, dead or timed-out hook gives the fallback and a warning; an interruption goes on. */
const settle = <A>(plugin: Loaded, hook: string, exit: Exit.Exit<A, unknown>, fallback: A): Effect.Effect<A> => {
  if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
  if (Cause.isInterruptedOnly(exit.cause)) return Effect.interrupt
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && failure.value instanceof PluginError) {
    // The plugin said why: one line with its reason, no stack.
    const { reason, message } = failure.value
    return Effect.logWarning(`plugin ${plugin.name} failed in ${hook}: ${reason}: ${message}`).pipe(
      Effect.annotateLogs({ plugin: plugin.name, hook, reason }),
      Effect.as(fallback)
    )
  }
  return Effect.logWarning(`plugin ${plugin.name} failed in ${hook}`, Cause.pretty(exit.cause)).pipe(
    Effect.annotateLogs({ plugin: plugin.name, hook }),
    Effect.as(fallback)
  )
}

/** A setup that died for want of a service: the message says which, and that a plugin before must provide it. */
const setupFailure = (plugin: string, cause: Cause.Cause<unknown>): PluginSetupError => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return new PluginSetupError({ plugin, message: describe(failure.value) })
  const defect = Cause.dieOption(cause)
  const text = Option.isSome(defect) ? describe(defect.value) : Cause.pretty(cause)
  const missing = /^Service not found: (\S+)/.exec(text)
  return new PluginSetupError({
    plugin,
    message: missing === null ? text : `${plugin} needs the service ${missing[1]}: list a plugin that provides it before ${plugin}`
  })
}

const shown = (u: unknown): string => {
  if (typeof u === "function") return "a function"
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

/**
 * What a plugin says it opens, read once and checked, as a copy of the numbers checked; or why
 * not. The session cap divides by these: a negative or fractional count, or NaN, would lift it.
 * A plugin from a config file is plain JavaScript: `files` may be a string (counted as none, said
 * nothing), a getter that throws (a defect that named no plugin), a Proxy that answers otherwise
 * on a later read (checked 1, counted -1000 by the cap).
 */
const filesOf = (plugin: Plugin<unknown>): { readonly files: Files | undefined } | { readonly error: string } => {
  let files: unknown
  try {
    files = plugin.files
  } catch (e) {
    return { error: `files: ${describe(e)}` }
  }
  if (files === undefined) return { files: undefined }
  if (typeof files !== "object" || files === null || Array.isArray(files)) return { error: `files must be { perSession?, held? }, not ${shown(files)}` }
  const counted: { perSession?: number; held?: number } = {}
  for (const key of ["perSession", "held"] as const) {
    let n: unknown
    try {
      n = (files as Record<string, unknown>)[key]
    } catch (e) {
      return { error: `files.${key}: ${describe(e)}` }
    }
    if (n === undefined) continue
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) return { error: `files.${key} must be a whole number from 0, not ${String(n)}` }
    counted[key] = n
  }
  return { files: counted }
}

/**
 * Loads the plugins in order: each one's `provides` layer is built in the server's scope and
 * added to the services of that plugin and of every later one; then its `setup` runs with them.
 * Returns the runner.
 */
export const make = (plugins: ReadonlyArray<Plugin<unknown>>): Effect.Effect<Pipeline, PluginSetupError, Scope.Scope | Services> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    let services: Context.Context<Services> = yield* Effect.context<Services>()
    const loaded: Array<Loaded> = []
    for (const plugin of plugins) {
      if (plugin.provides !== undefined) {
        // A layer's requirements are the services so far; a missing one is reported like a setup's.
        const built = yield* Layer.buildWithScope(plugin.provides as Layer.Layer<never, unknown, Services>, scope).pipe(
          Effect.provide(services),
          Effect.sandbox,
          Effect.mapError((cause) => setupFailure(plugin.name, cause))
        )
        services = Context.merge(services, built) as Context.Context<Services>
      }
      // What a setup needs beyond Services was provided by earlier plugins, or it dies here, named.
      const setup = plugin.setup as Effect.Effect<Hooks, unknown, Scope.Scope | Services> | undefined
      const extra = setup === undefined
        ? {}
        : yield* setup.pipe(
          Effect.provide(Context.add(services, Scope.Scope, scope)),
          Effect.sandbox,
          Effect.mapError((cause) => setupFailure(plugin.name, cause))
        )
      const counted = filesOf(plugin)
      if ("error" in counted) return yield* new PluginSetupError({ plugin: plugin.name, message: counted.error })
      const { files } = counted
      const { name: _n, timeout, setup: _s, provides: _p, files: _f, ...own } = plugin
      loaded.push({
        name: plugin.name,
        timeout: timeout === undefined ? defaultTimeout : Duration.decode(timeout),
        hooks: { ...own, ...extra },
        files,
        services
      })
    }
    return fromLoaded(loaded)
  })

// Generators defined once, not per call: each new generator function gives its generator
// objects a new shape, which keeps the JIT recompiling the fiber loop that runs them.
const runVerdicts = Effect.fnUntraced(function*<H extends VerdictHook>(
  list: ReadonlyArray<Loaded>,
  hook: H,
  ctx: VerdictContexts[H],
  guard: Guard
) {
  for (const plugin of list) {
    const fn = plugin.hooks[hook] as (c: VerdictContexts[H]) => Effect.Effect<Verdict.Verdict, unknown, Services>
    const verdict = yield* guard(plugin, hook, () => fn(ctx), failed)
    const problem = Verdict.problem(verdict)
    if (problem !== undefined) {
      // A broken answer counts as a failed hook: 451 4.3.0, logged with the plugin's name.
      yield* Effect.logWarning(`plugin ${plugin.name} failed in ${hook}: ${problem}`).pipe(Effect.annotateLogs({ plugin: plugin.name, hook }))
      return { verdict: failed, plugin: plugin.name } as Outcome
    }
    if (verdict._tag !== "Continue") return { verdict, plugin: plugin.name } as Outcome
  }
  return { verdict: Verdict.Continue, plugin: undefined } as Outcome
})

/**
 * AUTH PLAIN/LOGIN: the `authAttempt` hooks (the throttle) first, with the user name only; a
 * refusal there is the answer and no backend is asked; then the `auth` hooks check the
 * credentials. One run, so that the credentials never wait in the session's state.
 */
const runAuth = Effect.fnUntraced(function*(guards: ReadonlyArray<Loaded>, list: ReadonlyArray<Loaded>, ctx: AuthContext, guard: Guard) {
  const first = yield* runVerdicts(guards, "authAttempt", { session: ctx.session, mechanism: ctx.mechanism, username: ctx.username }, guard)
  // Only a refusal counts: an attempt hook cannot authenticate anybody.
  if (first.verdict._tag === "Reject" || first.verdict._tag === "Defer" || first.verdict._tag === "Disconnect") return first
  return yield* runVerdicts(list, "auth", ctx, guard)
})

const runRoutes = Effect.fnUntraced(function*(list: ReadonlyArray<Loaded>, ctx: RouteContext, guard: Guard) {
  for (const plugin of list) {
    const routes = yield* guard(plugin, "route", () => plugin.hooks.route!(ctx), undefined)
    if (routes !== undefined) return routes
  }
  return undefined
})

/** Names as RFC 4422 3.1 allows them; anything else a plugin offers is ignored. */
const mechanismName = /^[A-Z0-9_-]{1,20}$/

/** A plugin's mechanisms for `session`; a list that throws counts as empty (it runs at each EHLO, outside any hook's guard). */
const offered = (plugin: Loaded, session: SessionInfo): ReadonlyArray<string> => {
  try {
    return plugin.hooks.saslMechanisms?.(session) ?? []
  } catch {
    return []
  }
}

const native = new Set(["PLAIN", "LOGIN"])

const saslFailed: SaslStep = { _tag: "Done", verdict: failed, username: undefined }

/** A step that is no challenge nor a valid decision counts as a failed hook, as a broken verdict does. */
const checkStep = (plugin: Loaded) => (step: SaslStep): Effect.Effect<SaslStep> => {
  const problem = step?._tag === "Challenge"
    ? (typeof step.text === "string" ? undefined : "a challenge without text")
    : step?._tag === "Done"
    ? Verdict.problem(step.verdict)
    : "neither Challenge nor Done"
  if (problem === undefined) return Effect.succeed(step)
  return Effect.as(Effect.logWarning(`plugin ${plugin.name} failed in sasl: ${problem}`).pipe(Effect.annotateLogs({ plugin: plugin.name, hook: "sasl" })), saslFailed)
}

/** A plugin's exchange, each step guarded as a hook is. */
const guardedExchange = (plugin: Loaded, exchange: SaslExchange, guard: Guard): Exchange => ({
  plugin: plugin.name,
  step: (response) => Effect.flatMap(guard(plugin, "sasl", () => exchange.step(response), saslFailed), checkStep(plugin)),
  abort: exchange.abort === undefined ? Effect.void : guard(plugin, "sasl", () => exchange.abort!, undefined)
})

const noExchange = (plugin: string | undefined, step: SaslStep): Exchange => ({ plugin, step: () => Effect.succeed(step), abort: Effect.void })

const fromLoaded = (loaded: ReadonlyArray<Loaded>): Pipeline => {
  const with_ = (hook: keyof Hooks) => loaded.filter((p) => p.hooks[hook] !== undefined)
  const byHook = new Map<keyof Hooks, ReadonlyArray<Loaded>>()
  for (const hook of ["connect", "helo", "auth", "authAttempt", "authResult", "saslMechanisms", "sasl", "mailFrom", "rcptTo", "data", "route", "delivered", "disconnect"] as const) {
    byHook.set(hook, with_(hook))
  }
  const guards = byHook.get("authAttempt") ?? []
  const run = <H extends VerdictHook>(hook: H, ctx: VerdictContexts[H]): Effect.Effect<Outcome> => {
    const list = byHook.get(hook) ?? []
    if (hook === "auth" && guards.length > 0) return runAuth(guards, list, ctx as AuthContext, guard)
    if (list.length === 0) return Effect.succeed({ verdict: Verdict.Continue, plugin: undefined })
    return runVerdicts(list, hook, ctx, guard)
  }
  const routeList = byHook.get("route") ?? []
  const route = (ctx: RouteContext): Effect.Effect<ReadonlyArray<Route> | undefined> => runRoutes(routeList, ctx, guard)
  const saslList = (byHook.get("sasl") ?? []).filter((p) => p.hooks.saslMechanisms !== undefined)
  const mechanisms = (session: SessionInfo): ReadonlyArray<string> => {
    if (saslList.length === 0) return []
    const names = new Set<string>()
    for (const plugin of saslList) {
      for (const name of offered(plugin, session)) if (mechanismName.test(name) && !native.has(name)) names.add(name)
    }
    return [...names]
  }
  const sasl = (ctx: SaslContext): Effect.Effect<Exchange> => {
    const plugin = saslList.find((p) => offered(p, ctx.session).includes(ctx.mechanism))
    // Offered at EHLO, gone since (a backend that reconnected with fewer): not the client's fault.
    if (plugin === undefined) return Effect.succeed(noExchange(undefined, { _tag: "Done", verdict: unavailable, username: undefined }))
    return Effect.map(
      guard(plugin, "sasl", () => Effect.map(plugin.hooks.sasl!(ctx), (exchange): Exchange | undefined => guardedExchange(plugin, exchange, guard)), undefined),
      (exchange) => exchange ?? noExchange(plugin.name, saslFailed)
    )
  }
  type NotifyContext = AuthResultContext | DeliveredContext | DisconnectContext
  const notify = (hook: "authResult" | "delivered" | "disconnect", ctx: NotifyContext): Effect.Effect<void> =>
    Effect.forEach(byHook.get(hook) ?? [], (plugin) => {
      const fn = plugin.hooks[hook] as (c: NotifyContext) => Effect.Effect<void, unknown, Services>
      return guard(plugin, hook, () => fn(ctx), undefined)
    }, { discard: true })
  return {
    plugins: loaded.map((p) => ({ name: p.name, hooks: Object.keys(p.hooks).filter((k) => p.hooks[k as keyof Hooks] !== undefined) as Array<keyof Hooks>, files: p.files })),
    has: (hook) => (byHook.get(hook) ?? []).length > 0,
    run,
    route,
    mechanisms,
    sasl,
    notify: notify as Pipeline["notify"]
  }
}

const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

export class PluginSetupError extends Data.TaggedError("PluginSetupError")<{
  readonly plugin: string
  readonly message: string
}> {}
