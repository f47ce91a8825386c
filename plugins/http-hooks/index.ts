/**
 * HTTP hooks: at the stages chosen, a signed JSON POST describing the stage (session, envelope,
 * at data the header fields and the message) to a URL, whose JSON answer is the verdict and, at
 * data, modifications of the message (headers, recipients, sender) made through
 * `DataContext.edit`. At data the message goes in the request (`body: "inline"`) or as a
 * one-time URL of the plugin's own listener (`body: "url"`, Bodies.ts). The request and answer
 * are published in docs/hooks.md and docs/schemas/*.json. Requests are signed as the webhook transport signs (`signRequest`),
 * redirects are never followed, and a hook that is down, slow, redirects or answers outside the
 * schema gets the default action (`tempfail`: 451 4.7.1; `accept`: the stage goes on).
 *
 * @example
 * httpHooks({ hooks: [{ stage: "data", url: "http://127.0.0.1:8080/hook" }], secretEnv: "HOOK_KEY" })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Bytes, definePlugin, Fetch, Message, Redact, signRequest, Verdict } from "../../src/index.ts"
import type { DataContext, Hooks, Made, SessionInfo, TransactionInfo } from "../../src/index.ts"
import * as Bodies from "./Bodies.ts"
import { Options, parseListen } from "./options.ts"
import * as Wire from "./Wire.ts"

export { Options } from "./options.ts"

const encoder = new TextEncoder()

class Unavailable extends Error {}

/** The body as text, or `Unavailable` once it passes `max` bytes (the rest is never read). */
const readCapped = async (response: globalThis.Response, max: number): Promise<string> => {
  const body = await Bytes.readCapped(response, max)
  if (body === undefined) throw new Unavailable(`the answer is longer than ${max} bytes (maxResponseBytes)`)
  return decoder.decode(body)
}

const decoder = new TextDecoder()

const decodeAnswer = Schema.decodeUnknownEither(Schema.parseJson(Wire.Response), { onExcessProperty: "error" })

const sessionOf = (s: SessionInfo): Wire.Request["session"] => ({
  id: s.id,
  remoteAddress: s.remoteAddress,
  remotePort: s.remotePort,
  localAddress: s.localAddress,
  localPort: s.localPort,
  hostname: s.hostname,
  helo: s.helo?.name ?? null,
  tls: s.tls === undefined ? null : { protocol: s.tls.protocol, cipher: s.tls.cipher },
  user: s.user ?? null
})

const envelopeOf = (tx: Pick<TransactionInfo, "mailFrom" | "mailParams" | "recipients"> & { readonly id: string | null }): Wire.Request["envelope"] => ({
  transaction: tx.id,
  mailFrom: tx.mailFrom?.address ?? "",
  params: Object.fromEntries(Object.entries(tx.mailParams.raw).map(([k, v]) => [k, v ?? null])),
  recipients: tx.recipients.map((r) => r.mailbox.address)
})

const tempfail = Verdict.defer("Service unavailable - try again later", { code: 451, enhanced: "4.7.1" })

const make = (options: Options): Made => {
  const timeout = Duration.decode(options.timeout as Duration.DurationInput)
  const secret = options.secretEnv === undefined ? options.secret : globalThis.process?.env[options.secretEnv]
  if (options.secretEnv !== undefined && (secret === undefined || secret === "")) {
    throw new Error(`http-hooks: option "secretEnv": the environment variable ${options.secretEnv} is not set`)
  }
  const fallback = options.defaultAction === "tempfail" ? tempfail : Verdict.Continue

  const post = async (url: string, body: string, signal: AbortSignal) => {
    const timestamp = String(Math.floor(Date.now() / 1000))
    const headers: Record<string, string> = { "content-type": "application/json", "x-smtp-bridge-timestamp": timestamp }
    if (secret !== undefined) headers["x-smtp-bridge-signature"] = `v1=${signRequest(secret, timestamp, encoder.encode(body))}`
    // `manual`: a 3xx comes back as it is, never followed.
    const response = await Fetch.boundedFetch(url, { method: "POST", headers, body, redirect: "manual", signal })
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined)
      throw new Unavailable(response.status >= 300 && response.status < 400 || response.status === 0
        ? `HTTP ${response.status} redirect to ${Redact.url(response.headers.get("location") ?? "(none)")} (never followed)`
        : `HTTP ${response.status}`)
    }
    return readCapped(response, options.maxResponseBytes)
  }

  /**
   * Posts the request of `stage` to every hook of that stage in order; the first answer that is
   * not accept/continue decides. `request` is made for each call, in a scope that ends with it
   * (a message URL is valid that long).
   */
  const run = (stage: Wire.Stage, request: Effect.Effect<Wire.Request, never, Scope.Scope>, ctx: DataContext | undefined) =>
    Effect.gen(function*() {
      for (const hook of options.hooks) {
        if (hook.stage !== stage) continue
        const shown = Redact.url(hook.url)
        const warn = (why: string) =>
          Effect.as(Effect.logWarning(`http-hooks: ${shown} (${stage}): ${why}; default action ${options.defaultAction}`), fallback)
        const text = yield* Effect.scoped(Effect.flatMap(request, (r) => {
          const body = JSON.stringify(r)
          return Effect.tryPromise({
            try: (signal) => post(hook.url, body, signal),
            catch: (cause) => cause instanceof Unavailable ? cause.message : "cannot reach the hook"
          }).pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => `no answer within ${Duration.format(timeout)}` }))
        })).pipe(Effect.either)
        if (Either.isLeft(text)) {
          const v = yield* warn(text.left)
          if (v._tag !== "Continue") return v
          continue
        }
        const answer = decodeAnswer(text.right)
        if (Either.isLeft(answer)) {
          const v = yield* warn("an answer that is not the hook response schema")
          if (v._tag !== "Continue") return v
          continue
        }
        const verdict = apply(answer.right, stage, ctx)
        if (typeof verdict === "string") {
          const v = yield* warn(verdict)
          if (v._tag !== "Continue") return v
          continue
        }
        if (verdict._tag !== "Continue") return verdict
      }
      return Verdict.Continue
    })

  const has = (stage: Wire.Stage) => options.hooks.some((h) => h.stage === stage)
  const base = (stage: Wire.Stage, session: SessionInfo) => ({ version: 1 as const, stage, session: sessionOf(session), envelope: null })

  /** The message for `raw`, base64, when it is at most `maxMessageBytes` (as the earlier hooks left it). */
  const inline = (ctx: DataContext) =>
    Effect.gen(function*() {
      const fields = ctx.edit.headers()
      const head = fields.reduce((n, f) => n + f.bytes.byteLength, 0)
      if (ctx.message.size > options.maxMessageBytes || head > options.maxMessageBytes) return undefined
      const body = yield* Message.collect(ctx.edit.body())
      if (head + 2 + body.byteLength > options.maxMessageBytes) return undefined
      return Buffer.concat([...fields.map((f) => f.bytes), Buffer.from("\r\n"), body]).toString("base64")
    })

  const hooks = (bodies: Bodies.Bodies | undefined): Hooks => ({
    ...(has("connect") ? { connect: ({ session }) => run("connect", Effect.succeed(base("connect", session)), undefined) } : {}),
    ...(has("helo") ? { helo: ({ session }) => run("helo", Effect.succeed(base("helo", session)), undefined) } : {}),
    ...(has("mailFrom")
      ? {
        mailFrom: ({ session, from, params }) =>
          run("mailFrom", Effect.succeed({ ...base("mailFrom", session), envelope: envelopeOf({ id: null, mailFrom: from, mailParams: params, recipients: [] }) }), undefined)
      }
      : {}),
    ...(has("rcptTo")
      ? {
        rcptTo: ({ session, transaction, recipient }) =>
          run("rcptTo", Effect.succeed({ ...base("rcptTo", session), envelope: envelopeOf(transaction), recipient: recipient.mailbox.address }), undefined)
      }
      : {}),
    ...(has("data")
      ? {
        data: (ctx: DataContext) =>
          Effect.gen(function*() {
            const size = ctx.message.size
            const request = (message: Omit<NonNullable<Wire.Request["message"]>, "size" | "headers">): Wire.Request => ({
              ...base("data", ctx.session),
              envelope: envelopeOf({ ...ctx.transaction, ...ctx.edit.envelope(), mailParams: ctx.transaction.mailParams }),
              message: { size, headers: ctx.edit.headers().map((f) => ({ name: f.name, value: f.value })), ...message }
            })
            if (bodies === undefined) {
              const raw = yield* inline(ctx)
              return yield* run("data", Effect.succeed(request(raw === undefined ? {} : { raw })), ctx)
            }
            // One URL per hook call, of the message as the hooks before it (an earlier hook of this stage included) left it.
            const offered = Effect.suspend(() => bodies.offer(ctx.edit.rendered()))
            return yield* run("data", Effect.map(offered, (body) => request({ body })), ctx)
          })
      }
      : {})
  })

  if (options.body === "inline") return hooks(undefined)
  const listen = parseListen(options.bodyServer.listen)!
  return {
    setup: Effect.map(
      Bodies.make({
        host: listen.host,
        port: listen.port,
        baseUrl: options.bodyServer.baseUrl,
        maxConnections: options.bodyServer.maxConnections,
        secret: options.bodyServer.requireSignature ? secret : undefined,
        writeTimeoutMs: Duration.toMillis(timeout)
      }),
      hooks
    )
  }
}

/** The answer as a verdict, its modifications applied; a string says why it cannot be. */
const apply = (answer: Wire.Response, stage: Wire.Stage, ctx: DataContext | undefined): Verdict.Verdict | string => {
  const text = answer.text?.split("\n").slice(0, 10).join("\n")
  switch (answer.action) {
    case "reject": {
      const code = answer.code ?? 550
      const enhanced = answer.enhanced ?? "5.7.1"
      if (code < 500 || enhanced[0] !== "5") return `reject with ${code} ${enhanced}`
      return Verdict.reject(text ?? "Rejected", { code, enhanced })
    }
    case "tempfail": {
      const code = answer.code ?? 451
      const enhanced = answer.enhanced ?? "4.7.1"
      if (code >= 500 || enhanced[0] !== "4") return `tempfail with ${code} ${enhanced}`
      return Verdict.defer(text ?? "Try again later", { code, enhanced })
    }
    default:
      break
  }
  const m = answer.modifications
  if ((answer.action === "discard" || answer.action === "quarantine" || m !== undefined) && (stage !== "data" || ctx === undefined)) {
    return `${answer.action}${m === undefined ? "" : " with modifications"} outside the data stage`
  }
  try {
    if (m !== undefined && ctx !== undefined) {
      for (const name of m.removeHeaders ?? []) ctx.removeHeader(name)
      for (const h of m.addHeaders ?? []) ctx.edit.insertHeader(0, h.name, h.value)
      for (const r of m.removeRecipients ?? []) ctx.edit.removeRecipient(r)
      for (const r of m.addRecipients ?? []) ctx.edit.addRecipient(r)
      if (m.setSender !== undefined) ctx.edit.setSender(m.setSender)
    }
    if (answer.action === "discard") ctx!.edit.discard(answer.reason ?? "an HTTP hook said discard")
    if (answer.action === "quarantine") ctx!.edit.quarantine(answer.reason ?? "an HTTP hook said quarantine")
  } catch (e) {
    return `a modification was refused: ${e instanceof Error ? e.message : String(e)}`
  }
  return Verdict.Continue
}

export const httpHooks = definePlugin({
  name: "http-hooks",
  options: Options,
  // Past the request's own timeout (the default 10 s, or the option), the default action answers first.
  timeout: "10 minutes",
  // One request at a time per session, but Deno's fetch, when no connection is idle, connects anew
  // and keeps that one even if another came back first: up to two a session (183 for 100 sessions
  // with a hook service slow to accept, file-limit-http-hooks.test.ts), and the idle ones it keeps
  // (Fetch.maxIdlePerHost for each host the hooks call). With `body: "url"`, its own listener and
  // the connections it takes at once (the hook service's GETs; past `bodyServer.maxConnections` it
  // closes them).
  files: (o) => ({
    perSession: 2,
    held: new Set(o.hooks.map((h) => new URL(h.url).host)).size * Fetch.maxIdlePerHost + (o.body === "url" ? 1 + o.bodyServer.maxConnections : 0)
  }),
  make
})
