/**
 * Fuzzes the session machine without sockets: random command lines (valid, out of order, junk),
 * random hook verdicts, random facts about content, TLS that fails, connections that end, fed
 * the way the server feeds them. The oracles:
 * - `step` never throws for an input the server can produce;
 * - every command line gets a reply, except BDAT, which gets it once its chunk is read;
 * - every reply is well formed: a code 200-599, an enhanced code of the same class;
 * - nothing comes out once the session is closed;
 * - transaction events pair up: each `Ended` names a transaction that `Opened` and is not ended yet;
 * - the state never holds a password (unless the client sent it as a user name), nor a plugin mechanism's response;
 * - every plugin exchange started ends exactly once (its plugin decided, or it was aborted), and none outlives the session.
 */
import * as Notes from "../../src/pipeline/Notes.ts"
import * as Relay from "../../src/pipeline/Relay.ts"
import * as Verdict from "../../src/pipeline/Verdict.ts"
import * as Reply from "../../src/protocol/Reply.ts"
import * as Engine from "../../src/session/Engine.ts"
import type { Target } from "./Parsers.ts"
import type * as Random from "./Random.ts"

const password = "pw-7f3a"
const token = "tok-9c1e"
const b64 = (s: string) => Buffer.from(s).toString("base64")

const lines = [
  "EHLO client.test", "HELO client.test", "LHLO x", "MAIL FROM:<a@client.test>", "MAIL FROM:<> SIZE=99999999",
  "MAIL FROM:<a@client.test> REQUIRETLS", "MAIL FROM:<a@client.test> SMTPUTF8", "RCPT TO:<b@dest.test>", "RCPT TO:<ü@dest.test>",
  "DATA", "BDAT 10", "BDAT 0 LAST", "BDAT 5 LAST", "RSET", "NOOP", "QUIT", "VRFY x", "EXPN x", "HELP", "STARTTLS",
  "AUTH PLAIN", `AUTH PLAIN ${b64(`\0alice\0${password}`)}`, "AUTH LOGIN", b64("alice"), b64(password), "*", "AUTH CRAM-MD5",
  "AUTH PLAIN =", "", "MAIL", "RCPT TO:", "BDAT x", "\u0000\u00ff", "DATA extra",
  "AUTH SCRAM-SHA-256", `AUTH SCRAM-SHA-256 ${b64(`n,,n=alice,r=${token}`)}`, "AUTH XOAUTH2 =", `AUTH XOAUTH2 ${b64(token)}`, b64(`c=biws,p=${token}`),
  "AUTH XOAUTH2 not*base64", "AUTH PLAIN"
]

const steps = (r: Random.Random): Engine.Input => ({
  _tag: "SaslStep",
  plugin: r.chance(0.5) ? "p" : undefined,
  step: r.pick([
    { _tag: "Challenge", text: b64("r=nonce,s=salt,i=4096") },
    { _tag: "Challenge", text: "" },
    { _tag: "Challenge", text: "not base64\r\n250 injected" },
    { _tag: "Done", verdict: verdicts(r), username: r.chance(0.8) ? "alice" : undefined }
  ] as const)
})

const verdicts = (r: Random.Random): Verdict.Verdict =>
  r.pick([
    Verdict.Continue, Verdict.Continue, Verdict.Continue, Verdict.accept(), Verdict.accept({ identity: "alice@x" }),
    Verdict.reject("no"), Verdict.reject("auth first", { code: 530, enhanced: "5.7.0" }), Verdict.defer("later"),
    Verdict.disconnect("bye", { code: 421, enhanced: "4.7.0" })
  ])

const wellFormed = (reply: Reply.Reply): string | undefined => {
  if (!(reply.code >= 200 && reply.code <= 599)) return `reply code ${reply.code}`
  if (reply.enhanced !== undefined && (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(reply.enhanced) || reply.enhanced[0] !== String(reply.code)[0])) {
    return `enhanced code ${reply.enhanced} with ${reply.code}`
  }
  return undefined
}

export const session: Target = (r) => {
  let n = 0
  const notes = Notes.make()
  if (r.chance(0.5)) notes.set(Relay.Trusted, true)
  let state = Engine.start({
    hostname: "mx.test",
    maxInvalidCommands: r.int(12),
    maxAuthFailures: 1 + r.int(4),
    maxRecipients: 1 + r.int(4),
    maxMessageSize: 1000,
    tls: r.chance(0.8),
    auth: r.chance(0.8),
    saslMechanisms: r.chance(0.6) ? () => ["SCRAM-SHA-256", "XOAUTH2"] : () => [],
    allowInsecureAuth: r.chance(0.5),
    checkStorage: r.chance(0.3),
    bareLineEndings: r.chance(0.5) ? "reject" : "normalize",
    newId: () => `T${++n}`
  }, {
    id: "S", remoteAddress: "192.0.2.9", remotePort: 1, localAddress: "127.0.0.1", localPort: 25, hostname: "mx.test",
    tls: undefined, helo: undefined, user: undefined, authMechanism: undefined, notes
  })
  const open = new Set<string>()
  let named = false
  let exchange = false
  let tokenNamed = false
  const trail: Array<string> = []
  /** Feeds one input and every answer to its actions; gives the replies or a violation. */
  const feed = (input: Engine.Input): Array<Reply.Reply> | string => {
    const replies: Array<Reply.Reply> = []
    let next: Engine.Input | undefined = input
    while (next !== undefined) {
      const wasClosed = state.phase._tag === "Closed"
      let result: Engine.Result
      try {
        result = Engine.step(state, next)
      } catch (error) {
        return `step threw ${String(error)} after ${trail.join(" | ")}`
      }
      if (wasClosed && (result.replies.length > 0 || result.actions.length > 0)) return `output after close: ${trail.join(" | ")}`
      state = result.state
      replies.push(...result.replies)
      for (const event of result.transaction) {
        if (event._tag === "Opened") open.add(event.id)
        else if (!open.delete(event.id)) return `Ended ${event.id} that is not open, after ${trail.join(" | ")}`
      }
      next = undefined
      for (const action of result.actions) {
        switch (action._tag) {
          case "Run":
            next = { _tag: "Verdict", verdict: verdicts(r), plugin: r.chance(0.5) ? "p" : undefined }
            break
          case "SaslStart":
          case "SaslContinue":
            if (exchange !== (action._tag === "SaslContinue")) return `${action._tag} with${exchange ? "" : "out"} an open exchange after ${trail.join(" | ")}`
            exchange = true
            next = steps(r)
            if (next._tag === "SaslStep" && next.step._tag === "Done") exchange = false
            break
          case "SaslAbort":
            if (!exchange) return `SaslAbort without an open exchange after ${trail.join(" | ")}`
            exchange = false
            break
          case "CheckStorage":
            next = { _tag: "Storage", ok: r.chance(0.7) }
            break
          case "StartTls":
            next = r.chance(0.9) ? { _tag: "TlsUp", tls: { protocol: "TLSv1.3", cipher: "x", mode: "starttls" } } : { _tag: "TlsFailed" }
            break
          case "Seal":
            next = { _tag: "Sealed", result: r.pick(["ok", "ok", "failed", "headerTooLarge"] as const) }
            break
          case "Deliver":
            next = { _tag: "Delivered", reply: r.pick([Reply.make(250, "2.0.0", "Ok"), Reply.make(451, "4.4.1", "later"), Reply.make(554, "5.0.0", "no")]) }
            break
          case "ReceiveChunk":
            if (r.chance(0.05)) next = { _tag: "End", why: "timeout" }
            break
        }
      }
    }
    for (const reply of replies) {
      const bad = wellFormed(reply)
      if (bad !== undefined) return `${bad} after ${trail.join(" | ")}`
    }
    return replies
  }
  const first = feed({ _tag: "Connected" })
  if (typeof first === "string") return first
  for (let i = 0; i < 40 && state.phase._tag !== "Closed"; i++) {
    const phase = state.phase._tag
    let input: Engine.Input
    if (phase === "Data" || phase === "Chunk") {
      input = r.chance(0.05)
        ? { _tag: "End", why: r.pick(["eof", "timeout"] as const) }
        : { _tag: "ContentEnd", tooBig: r.chance(0.1), bare: r.chance(0.2), storageFailed: r.chance(0.05) }
    } else if (r.chance(0.03)) input = { _tag: "End", why: r.pick(["eof", "timeout", "drain", "flood"] as const) }
    else if (r.chance(0.05)) input = { _tag: "TooLong" }
    else input = { _tag: "Line", line: r.pick(lines) }
    trail.push(input._tag === "Line" ? input.line : input._tag)
    // The client itself may send the password text as AUTH LOGIN's user name: then it is a name.
    if (input._tag === "Line" && input.line === b64(password) && state.phase._tag === "Sasl" && state.phase.username === undefined) named = true
    if (input._tag === "Line" && [b64(token), b64(`c=biws,p=${token}`)].includes(input.line) && state.phase._tag === "Sasl" && state.phase.username === undefined) tokenNamed = true
    const replies = feed(input)
    if (typeof replies === "string") return replies
    if ((input._tag === "Line" || input._tag === "TooLong") && replies.length === 0 && state.phase._tag !== "Chunk") {
      return `no reply to ${trail.at(-1)} (now waiting for ${state.phase._tag}) after ${trail.join(" | ")}`
    }
    if (input._tag === "ContentEnd" && replies.length === 0) return `no reply at the end of content after ${trail.join(" | ")}`
    if (!named && JSON.stringify(state).includes(password)) return `the state holds the password after ${trail.join(" | ")}`
    const json = JSON.stringify(state)
    if (!tokenNamed && (json.includes(token) || json.includes(b64(token)) || json.includes(b64(`c=biws,p=${token}`)))) {
      return `the state holds a mechanism's response after ${trail.join(" | ")}`
    }
    if (exchange && (state.phase._tag as string) === "Closed") return `the session closed with an exchange open after ${trail.join(" | ")}`
  }
  return undefined
}
