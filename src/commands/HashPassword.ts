/**
 * `smtp-bridge hash-password [--user NAME] > users.htpasswd`: stdout carries only the htpasswd
 * line, so it can be redirected into the users file. On a terminal the prompts go to stderr and
 * the password is read with echo off (raw mode) and asked twice; from a pipe it is the first line
 * of stdin (`echo "$PASS" | smtp-bridge hash-password`).
 *
 * Hand-written rather than @effect/cli's `Prompt.password`: that prompt draws on stdout, so with
 * stdout redirected the prompt (and its ANSI redraws) landed in the users file and the terminal
 * showed nothing.
 */
import { Command, Options } from "@effect/cli"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createInterface } from "node:readline"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"

/** A problem with the command's input; printed as one line, exit 1. */
export class HashPasswordError extends Data.TaggedError("HashPasswordError")<{ readonly message: string }> {}

/** The first line of a piped stdin. */
const readLine: Effect.Effect<string, HashPasswordError> = Effect.async((resume) => {
  const lines = createInterface({ input: process.stdin, terminal: false })
  let answered = false
  lines.once("line", (line) => {
    answered = true
    lines.close()
    resume(Effect.succeed(line))
  })
  lines.once("close", () => {
    if (!answered) resume(Effect.fail(new HashPasswordError({ message: "no password on stdin" })))
  })
  return Effect.sync(() => lines.close())
})

/**
 * One line typed on the terminal with echo off. Enter ends it, Backspace and Ctrl-U edit it,
 * Ctrl-C and Ctrl-D (on an empty line) give up; escape sequences (arrow keys) are ignored.
 */
const maxLength = 1024

const readHidden = (prompt: string): Effect.Effect<string, HashPasswordError> =>
  Effect.async((resume) => {
    const input = process.stdin
    let typed: Array<string> = []
    let done = false
    const cleanup = () => {
      if (done) return
      done = true
      input.off("data", onData)
      input.setRawMode(false)
      input.pause()
    }
    const finish = (result: Effect.Effect<string, HashPasswordError>) => {
      cleanup()
      process.stderr.write("\n")
      resume(result)
    }
    const onData = (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : chunk.toString("utf8")
      if (text.startsWith("\u001b")) return
      for (const ch of text) {
        if (ch === "\r" || ch === "\n") return finish(Effect.succeed(typed.join("")))
        if (ch === "\u0003") return finish(Effect.fail(new HashPasswordError({ message: "interrupted" })))
        if (ch === "\u0004") {
          if (typed.length === 0) return finish(Effect.fail(new HashPasswordError({ message: "no password given" })))
          return finish(Effect.succeed(typed.join("")))
        }
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1)
        else if (ch === "\u0015") typed = []
        else if (ch >= " ") typed.push(ch)
        // bcrypt reads 72 bytes at most; the bound keeps a runaway paste from growing without end.
        if (typed.length > maxLength) {
          return finish(Effect.fail(new HashPasswordError({ message: `the password is longer than ${maxLength} characters` })))
        }
      }
    }
    // Echo goes off before the prompt appears: a password typed or pasted right after the prompt
    // would otherwise be echoed by the terminal.
    input.setRawMode(true)
    process.stderr.write(prompt)
    input.on("data", onData)
    input.resume()
    return Effect.sync(cleanup)
  })

const readPassword: Effect.Effect<string, HashPasswordError> = Effect.suspend(() => {
  if (!process.stdin.isTTY) return readLine
  return Effect.gen(function*() {
    const first = yield* readHidden("Password: ")
    if (first === "") return first
    const again = yield* readHidden("Again: ")
    if (again !== first) return yield* new HashPasswordError({ message: "the passwords do not match" })
    return first
  })
})

export const hashPasswordCommand = Command.make("hash-password", {
  user: Options.text("user").pipe(
    Options.withPseudoName("NAME"),
    Options.withDescription("User name; prints a whole htpasswd line user:hash"),
    Options.optional
  ),
  password: Options.text("password").pipe(
    Options.withPseudoName("PASSWORD"),
    Options.withDescription("Password (visible in the process list; omit it to be asked on the terminal or to read stdin)"),
    Options.optional
  )
}, (o) =>
  Effect.gen(function*() {
    if (Option.isSome(o.user) && /[:\s]/.test(o.user.value)) {
      return yield* new HashPasswordError({ message: "the user name may not contain ':' or spaces" })
    }
    const password = Option.isSome(o.password) ? o.password.value : yield* readPassword
    if (password === "") return yield* new HashPasswordError({ message: "the password is empty" })
    const hash = yield* Effect.tryPromise({
      try: () => hashPassword(password),
      catch: (error) => new HashPasswordError({ message: `cannot hash: ${error instanceof Error ? error.message : String(error)}` })
    })
    yield* Console.log(Option.isSome(o.user) ? `${o.user.value}:${hash}` : hash)
  })).pipe(Command.withDescription("Print a bcrypt htpasswd entry for the users file (prompts on stderr, the line on stdout)"))
