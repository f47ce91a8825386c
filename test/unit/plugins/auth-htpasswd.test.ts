import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect, Either, Fiber } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { authHtpasswd, hashPassword, HtpasswdError, parseHtpasswd } from "../../../plugins/auth-htpasswd/index.ts"
import { Verdict } from "../../../src/index.ts"
import type { AuthContext, Hooks } from "../../../src/index.ts"
import { Contexts } from "smtp-bridge/testing"

// A real line from Apache's tool, so the plugin is tested against what operators actually write.
const htpasswdLine = (user: string, password: string): string =>
  execFileSync("htpasswd", ["-nbB", user, password], { encoding: "utf8" }).trim()

const writeFile = (text: string): string => {
  const file = join(mkdtempSync(join(tmpdir(), "auth-htpasswd-")), "users.htpasswd")
  writeFileSync(file, text)
  return file
}

const credentials = (username: string, password: string, authzid?: string): AuthContext => ({
  session: Contexts.session(),
  mechanism: "PLAIN",
  username,
  password,
  authzid
})

const invalid = Verdict.Reject({ code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" })

const hooksFor = (file: string) =>
  Effect.gen(function*() {
    const setup = authHtpasswd({ file }).setup
    if (setup === undefined) throw new Error("auth-htpasswd has no setup")
    const hooks: Hooks = yield* setup
    if (hooks.auth === undefined) throw new Error("auth-htpasswd setup returned no auth hook")
    return hooks.auth
  })

const setupError = (file: string) =>
  Effect.flatMap(Effect.flip(hooksFor(file)), (error) =>
    error instanceof HtpasswdError ? Effect.succeed(error) : Effect.die(`expected an HtpasswdError, got ${String(error)}`))

layer(Resolver.layer())("auth-htpasswd", (it) => {
  const apacheLine = htpasswdLine("alice", "correct horse")

  it("reads a line written by htpasswd -nbB", () => {
    expect(apacheLine).toMatch(/^alice:\$2y\$\d\d\$/)
  })

  it.scoped("accepts the right password from an htpasswd -nbB entry with the user as identity", () =>
    Effect.gen(function*() {
      const auth = yield* hooksFor(writeFile(`# users\n\n${apacheLine}\n`))
      expect(yield* auth(credentials("alice", "correct horse"))).toEqual(Verdict.accept({ identity: "alice" }))
    }))

  it.scoped("rejects a wrong password with 535 5.7.8", () =>
    Effect.gen(function*() {
      const auth = yield* hooksFor(writeFile(`${apacheLine}\n`))
      expect(yield* auth(credentials("alice", "Correct horse"))).toEqual(invalid)
    }))

  it.scoped("continues for an unknown user, so that a later backend (or the bridge's 535 5.7.8) answers", () =>
    Effect.gen(function*() {
      const auth = yield* hooksFor(writeFile(`${apacheLine}\n`))
      expect(yield* auth(credentials("mallory", "correct horse"))).toEqual(Verdict.Continue)
      expect(yield* auth(credentials("Alice", "correct horse"))).toEqual(Verdict.Continue)
    }))

  it.scoped("rejects acting for another identity (authzid) with 535 5.7.8", () =>
    Effect.gen(function*() {
      const auth = yield* hooksFor(writeFile(`${apacheLine}\n`))
      expect(yield* auth(credentials("alice", "correct horse", "bob"))).toEqual(invalid)
      expect(yield* auth(credentials("alice", "correct horse", "alice"))).toEqual(Verdict.accept({ identity: "alice" }))
    }))

  it.scoped("accepts entries made by hashPassword, with CRLF line endings", () =>
    Effect.gen(function*() {
      const hash = yield* Effect.promise(() => hashPassword("pa:ss wörd", 4))
      const auth = yield* hooksFor(writeFile(`bob:${hash}\r\n${apacheLine}\r\n`))
      expect(yield* auth(credentials("bob", "pa:ss wörd"))).toEqual(Verdict.accept({ identity: "bob" }))
      expect(yield* auth(credentials("alice", "correct horse"))).toEqual(Verdict.accept({ identity: "alice" }))
    }))

  // The pipeline interrupts a hook at its timeout and the throttle gives the attempt back: a
  // check left running would be uncounted work queued ahead of every later login.
  it.scoped("leaves no check queued for 60 interrupted AUTHs: the next login takes about one check", () =>
    Effect.gen(function*() {
      const hash = yield* Effect.promise(() => hashPassword("correct horse", 9))
      const auth = yield* hooksFor(writeFile(`bob:${hash}\n`))
      const started = performance.now()
      expect(yield* auth(credentials("bob", "correct horse"))).toEqual(Verdict.accept({ identity: "bob" }))
      const single = performance.now() - started
      const guesses = yield* Effect.forEach(Array.from({ length: 60 }), () => Effect.fork(auth(credentials("bob", "guess"))))
      yield* Effect.forEach(guesses, Fiber.interrupt, { concurrency: "unbounded" })
      const login = performance.now()
      expect(yield* auth(credentials("bob", "correct horse"))).toEqual(Verdict.accept({ identity: "bob" }))
      const took = performance.now() - login
      expect(took, `one check ${single.toFixed(0)} ms, the login ${took.toFixed(0)} ms`).toBeLessThan(single * 10)
    }), 60_000)

  it.scoped("fails setup naming the file and line when a hash is not bcrypt", () =>
    Effect.gen(function*() {
      const md5 = execFileSync("htpasswd", ["-nbm", "carol", "secret"], { encoding: "utf8" }).trim()
      const file = writeFile(`${apacheLine}\n# comment\n${md5}\n`)
      const error = yield* setupError(file)
      expect(error).toMatchObject({ reason: "Format", file, line: 3 })
      expect(error.message).toContain(`${file}:3:`)
      expect(error.message).toContain("only bcrypt")
    }))

  it.scoped("fails setup naming the file when it cannot be read", () =>
    Effect.gen(function*() {
      const error = yield* setupError("/nonexistent/users.htpasswd")
      expect(error).toMatchObject({ reason: "Read", file: "/nonexistent/users.htpasswd" })
      expect(error.message).toContain("/nonexistent/users.htpasswd")
    }))
})

layer(Resolver.layer())("parseHtpasswd", (it) => {
  const hash = "$2y$04$" + "a".repeat(53)

  it("ignores blank lines and comments and accepts $2a$, $2b$ and $2y$", () => {
    const text = `# header\n\n  \nx:${hash}\ny:${hash.replace("2y", "2a")}\nz:${hash.replace("2y", "2b")}\n`
    const users = Either.getOrThrow(parseHtpasswd(text, "f"))
    expect([...users.keys()]).toEqual(["x", "y", "z"])
  })

  it("refuses SHA-1, crypt and plain entries with the line number", () => {
    for (const [line, n] of [["u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", 2], ["u:abJnggxhB/yWI", 2], ["u:secret", 2]] as const) {
      const result = parseHtpasswd(`ok:${hash}\n${line}\n`, "users")
      expect(Either.isLeft(result) && result.left).toMatchObject({ reason: "Format", line: n })
    }
  })

  it("refuses a line without a user and a user listed twice", () => {
    expect(Either.isLeft(parseHtpasswd(`:${hash}\n`, "f"))).toBe(true)
    const twice = parseHtpasswd(`x:${hash}\nx:${hash}\n`, "f")
    expect(Either.isLeft(twice) && twice.left.message).toContain("listed twice")
  })
})

layer(Resolver.layer())("hashPassword", (it) => {
  it("writes a $2y$ hash with the requested cost", async () => {
    expect(await hashPassword("secret", 5)).toMatch(/^\$2y\$05\$[./A-Za-z0-9]{53}$/)
  })

  it("refuses a cost outside 4 to 31", async () => {
    await expect(hashPassword("secret", 3)).rejects.toThrow(RangeError)
  })
})
