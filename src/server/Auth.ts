/** AUTH PLAIN and LOGIN (RFC 4954), with the credentials checked by `auth` plugin hooks. */
import { Effect } from "effect"
import * as Reply from "../protocol/Reply.ts"
import * as Sasl from "../protocol/Sasl.ts"
import { authOffered, refuse } from "./Commands.ts"
import type { LineRead } from "./Connection.ts"
import { type Conn, invalid, reply, replyAndClose } from "./State.ts"

const cancelled = Reply.make(501, "5.0.0", "Authentication cancelled")
const badBase64 = Reply.make(501, "5.5.2", "Invalid base64 data")

type Credentials = { readonly username: string; readonly password: string; readonly authzid: string | undefined }

/** Asks for one SASL response line; undefined when the exchange ended (reply already queued). */
const challenge = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, prompt: string) {
  reply(c, Reply.make(334, undefined, prompt))
  const event = yield* readLine(c)
  if (event._tag !== "Line") return undefined
  if (Sasl.isCancel(event.line)) {
    reply(c, cancelled)
    return undefined
  }
  return event.line
})

const plain = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, initial: string | undefined) {
  const response = initial ?? (yield* challenge(c, readLine, ""))
  if (response === undefined) return undefined
  const decoded = Sasl.decodePlain(response)
  if (decoded === undefined) {
    reply(c, badBase64)
    return undefined
  }
  return decoded satisfies Credentials
})

const login = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, initial: string | undefined) {
  const first = initial ?? (yield* challenge(c, readLine, Sasl.loginUsernamePrompt))
  if (first === undefined) return undefined
  const username = Sasl.decodeLoginField(first)
  if (username === undefined) return void reply(c, badBase64)
  const second = yield* challenge(c, readLine, Sasl.loginPasswordPrompt)
  if (second === undefined) return undefined
  const password = Sasl.decodeLoginField(second)
  if (password === undefined) return void reply(c, badBase64)
  return { username, password, authzid: undefined } satisfies Credentials
})

export const auth = Effect.fnUntraced(function*(c: Conn, readLine: LineRead, mechanism: string, initial: string | undefined) {
  if (c.session.helo?.verb !== "EHLO") return invalid(c, Reply.badSequence("Send EHLO first"))
  if (c.session.user !== undefined) return invalid(c, Reply.badSequence("Already authenticated"))
  if (c.tx !== undefined) return invalid(c, Reply.badSequence("AUTH not allowed during a mail transaction"))
  if (!c.env.pipeline.has("auth")) return invalid(c, Reply.make(502, "5.5.1", "AUTH not available"))
  if (!authOffered(c)) return reply(c, Reply.encryptionRequired)
  if (mechanism !== "PLAIN" && mechanism !== "LOGIN") {
    return invalid(c, Reply.make(504, "5.5.4", "Unrecognized authentication type"))
  }
  const credentials = mechanism === "PLAIN" ? yield* plain(c, readLine, initial) : yield* login(c, readLine, initial)
  if (credentials === undefined) return
  const { verdict, plugin } = yield* c.env.pipeline.run("auth", { session: c.session, mechanism, ...credentials })
  yield* c.env.pipeline.notify("authResult", {
    session: c.session,
    mechanism,
    username: credentials.username,
    success: verdict._tag === "Accept"
  })
  if (verdict._tag === "Accept") {
    c.session.user = verdict.identity ?? credentials.username
    c.session.authMechanism = mechanism
    return reply(c, Reply.make(235, "2.7.0", "Authentication successful"))
  }
  // A deferral or a disconnect is not a failed guess: it does not count against the client.
  if (verdict._tag === "Defer" || verdict._tag === "Disconnect") return void (yield* refuse(c, verdict, plugin))
  c.authFailures++
  const r = verdict._tag === "Reject" ? Reply.make(verdict.code, verdict.enhanced, verdict.text) : Reply.badCredentials
  if (c.authFailures >= c.env.config.limits.maxAuthFailures) {
    return replyAndClose(c, Reply.make(421, "4.7.0", "Too many authentication failures, closing connection"))
  }
  reply(c, r)
})
