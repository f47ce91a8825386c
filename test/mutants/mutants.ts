/**
 * The bugs the mutation check plants (test/mutants/run.ts), each a precise search/replace in one
 * file and the test files that must catch it. The first eleven are the planted bugs of the
 * test-net review, four of which no test caught at the time. A search text must occur exactly
 * once: when the code changes, the entry fails loudly and is updated with it.
 */
export interface Mutant {
  readonly name: string
  readonly file: string
  readonly edits: ReadonlyArray<{ readonly search: string; readonly replace: string }>
  /** Test files (relative to the repository) that must fail with the bug planted. */
  readonly tests: ReadonlyArray<string>
}

export const mutants: ReadonlyArray<Mutant> = [
  {
    name: "bare LF as line end (DATA)",
    file: "src/protocol/DataDecoder.ts",
    edits: [{
      search: "            runStart = i = j + 1\n            bare = true\n          } else if (j + 1 === n) {",
      replace: "            runStart = i = j + 1\n            bare = true\n            state = \"LineStart\"\n          } else if (j + 1 === n) {"
    }],
    tests: ["test/unit/protocol/DataDecoder.test.ts", "test/e2e/smuggling.test.ts"]
  },
  {
    name: "trusted note ignored (relay-policy)",
    file: "plugins/relay-policy/index.ts",
    edits: [{
      search: "  session.user !== undefined || session.notes.get(Relay.Trusted) === true",
      replace: "  session.user !== undefined"
    }],
    tests: ["test/unit/plugins/relay-policy.test.ts", "test/e2e/relay.test.ts"]
  },
  {
    name: "RCPT fallback off",
    file: "src/session/Engine.ts",
    edits: [{
      search: "if (v._tag === \"Continue\" && state.session.user === undefined",
      replace: "if (false && v._tag === \"Continue\" && state.session.user === undefined"
    }],
    tests: ["test/unit/session/Engine.test.ts", "test/e2e/relay-fallback.test.ts"]
  },
  {
    name: "sender local part ignored",
    file: "src/pipeline/Senders.ts",
    edits: [{
      search: "  return pattern.kind === \"domain\" || foldLocal(mailbox.local) === pattern.local",
      replace: "  return true"
    }],
    tests: ["test/unit/plugins/sender-identity.test.ts", "test/e2e/sender.test.ts"]
  },
  {
    name: "fsync removed (spool)",
    file: "src/transport/spool/Store.ts",
    edits: [{
      search: "        yield* Effect.tryPromise({ try: () => handle.sync(), catch: fromUnknown(\"Write\", tmp, \"fsync\") })\n",
      replace: ""
    }],
    tests: ["test/e2e/spool-durability.test.ts"]
  },
  {
    name: "commit forked before 250",
    file: "src/server/Delivery.ts",
    edits: [
      {
        search: "\n  const queued = yield* Effect.either(spool.enqueue({\n    id: tx.id,",
        replace: "\n  const queued = yield* Effect.either(Effect.forkDaemon(spool.enqueue({\n    id: tx.id,"
      },
      {
        search: "    session: c.session\n  }))\n  if (Either.isLeft(queued)) {\n    yield* Effect.logError(`message ${tx.id}: cannot spool: ",
        replace: "    session: c.session\n  })))\n  if (Either.isLeft(queued)) {\n    yield* Effect.logError(`message ${tx.id}: cannot spool: "
      }
    ],
    tests: ["test/e2e/spool-durability.test.ts"]
  },
  {
    name: "Cluster keys not hash-tagged",
    file: "src/ratelimit/RedisStore.ts",
    edits: [{ search: "    const prefix = redis.cluster ? Redis.hashTagged(given) : given", replace: "    const prefix = given" }],
    tests: ["test/e2e/rate-limit/redis-cluster.test.ts"]
  },
  {
    name: "cost ignored in Limiter",
    file: "src/ratelimit/Limiter.ts",
    edits: [{ search: "  const next = start + cost * interval", replace: "  const next = start + interval" }],
    tests: ["test/unit/ratelimit/Limiter.test.ts", "test/unit/ratelimit/MemoryStore.test.ts"]
  },
  {
    name: "expired TAT kept",
    file: "src/ratelimit/Limiter.ts",
    edits: [{ search: "  const start = tat === undefined || tat < now ? now : tat", replace: "  const start = tat === undefined ? now : tat" }],
    tests: ["test/unit/ratelimit/Limiter.test.ts", "test/unit/ratelimit/MemoryStore.test.ts"]
  },
  {
    name: "Lua cost ignored",
    file: "src/ratelimit/RedisStore.ts",
    edits: [{ search: "  local nxt = tat + cost * interval", replace: "  local nxt = tat + interval" }],
    tests: ["test/e2e/rate-limit/redis-script.test.ts", "test/e2e/rate-limit/redis-store.test.ts"]
  },
  {
    name: "STARTTLS drops no buffered input",
    file: "src/server/Connection.ts",
    edits: [{ search: "  c.decoder.discardBuffered()\n", replace: "" }],
    tests: ["test/e2e/starttls.test.ts", "test/e2e/starttls-injection.test.ts"]
  },
  {
    name: "discardInput removed",
    file: "src/server/Connection.ts",
    edits: [{ search: "    c.socket.discardInput()\n", replace: "" }],
    tests: ["test/e2e/starttls.test.ts", "test/e2e/starttls-injection.test.ts"]
  },
  {
    name: "trusted note ignored (RCPT fallback)",
    file: "src/session/Engine.ts",
    edits: [{ search: " && state.session.notes.get(Relay.Trusted) !== true) {", replace: ") {" }],
    tests: ["test/unit/session/Engine.test.ts", "test/e2e/relay-fallback.test.ts"]
  },
  {
    name: "queue flush keeps the hold",
    file: "src/transport/Spool.ts",
    edits: [{ search: "          flushed.add(id)\n          held.delete(id)\n", replace: "          flushed.add(id)\n" }],
    tests: ["test/unit/transport/Spool.queue.test.ts"]
  },
  {
    name: "free space ignored at MAIL",
    file: "src/server/Connection.ts",
    edits: [{ search: "yield* Spool.hasRoom(spool.dir, size, floor)", replace: "yield* Spool.hasRoom(spool.dir, 0, 0)" }],
    tests: ["test/e2e/spool-storage.test.ts"]
  },
  // Protections of the hardening review (issue 10) and the fuzzing defects, kept closed.
  {
    name: "webhook follows redirects",
    file: "src/transport/Webhook.ts",
    edits: [{ search: "const noRedirects: globalThis.RequestInit = { redirect: \"manual\" }", replace: "const noRedirects: globalThis.RequestInit = { redirect: \"follow\" }" }],
    tests: ["test/e2e/webhook-redirect.test.ts"]
  },
  {
    name: "DKIM signs a From the user may not use",
    file: "plugins/dkim-sign/index.ts",
    edits: [{ search: "allowed: ctx.transaction.notes.get(Senders.HeaderFromAllowed) === true", replace: "allowed: true" }],
    tests: ["test/e2e/mailauth/forged-from.test.ts"]
  },
  {
    name: "AUTH attempt not counted before the check",
    file: "plugins/rate-limit/Auth.ts",
    edits: [{ search: "store.update(\"acquire\", keys.map((k) => k.request))", replace: "store.update(\"peek\", keys.map((k) => k.request))" }],
    tests: ["test/unit/plugins/rate-limit.test.ts", "test/e2e/auth-throttle.test.ts"]
  },
  {
    name: "known login still counted against its network",
    file: "plugins/rate-limit/Auth.ts",
    edits: [{ search: "return known ? [pair] :", replace: "return false ? [pair] :" }],
    tests: ["test/unit/plugins/rate-limit.test.ts", "test/e2e/auth-throttle.test.ts"]
  },
  // Rules of the session machine, caught by the unit tests without sockets and by real clients.
  {
    name: "AUTH failures not counted",
    file: "src/session/Auth.ts",
    edits: [{ search: "const failures = t.state.authFailures + 1", replace: "const failures = t.state.authFailures" }],
    tests: ["test/unit/session/Auth.test.ts", "test/e2e/auth.test.ts"]
  },
  {
    name: "STARTTLS keeps the EHLO",
    file: "src/session/Engine.ts",
    edits: [{ search: "tls: input.tls, helo: undefined, user: undefined", replace: "tls: input.tls, user: undefined" }],
    tests: ["test/unit/session/Engine.test.ts", "test/e2e/starttls.test.ts"]
  },
  {
    name: "quadratic trim of trailing blanks",
    file: "src/protocol/Command.ts",
    edits: [{
      search: "  let end = line.length\n  while (end > 0 && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--\n  return end === line.length ? line : line.slice(0, end)",
      replace: "  return line.replace(/[ \\t]+$/, \"\")"
    }],
    tests: ["test/unit/protocol/CostPerByte.test.ts"]
  }
]
