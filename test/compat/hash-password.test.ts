/**
 * `hash-password --user alice@example.com > users.htpasswd`, as the README writes it: at a
 * terminal (a pseudo-terminal here) the prompts go to the terminal, the password is not echoed
 * and stdout carries the htpasswd line alone; from a pipe the password is the first line of stdin.
 */
import * as bcrypt from "bcryptjs"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { parseHtpasswd } from "../../plugins/auth-htpasswd/index.ts"
import { run } from "../support/exec.ts"
import { onTerminal } from "../support/pty.ts"
import { commandFor, runtimes } from "../support/runtimes.ts"

const user = "alice@example.com"
const password = "correct horse 7"

/** The one htpasswd line in `stdout`, checked against the password. */
const expectLineFor = async (stdout: string, pass: string) => {
  expect(stdout).toMatch(/^alice@example\.com:\$2y\$\d\d\$.{53}\n$/)
  const users = parseHtpasswd(stdout, "users.htpasswd")
  if (Either.isLeft(users)) throw new Error(users.left.message)
  expect(await bcrypt.compare(pass, users.right.get(user)!)).toBe(true)
}

describe.each(runtimes)("hash-password under %s", (runtime) => {
  it("at a terminal prompts on the terminal, echoes nothing and writes only the htpasswd line to stdout", async () => {
    const argv = await commandFor(runtime, ["hash-password", "--user", user])
    const result = await onTerminal(argv.flat(), [["Password: ", password], ["Again: ", password]])
    expect(result.missing).toEqual([])
    expect(result.code).toBe(0)
    await expectLineFor(result.stdout, password)
    expect(result.terminal).toContain("Password: ")
    expect(result.terminal).not.toContain(password)
    expect(result.terminal).not.toMatch(/\$2y\$/)
  })

  it("at a terminal refuses two different passwords with exit 1 and writes nothing to stdout", async () => {
    const argv = await commandFor(runtime, ["hash-password", "--user", user])
    const result = await onTerminal(argv.flat(), [["Password: ", password], ["Again: ", "something else"]])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.terminal).toContain("smtp-bridge: the passwords do not match")
  })

  it("at a terminal stops at Ctrl-C with exit 1, writing nothing to stdout", async () => {
    const argv = await commandFor(runtime, ["hash-password", "--user", user])
    const result = await onTerminal(argv.flat(), [["Password: ", "half typed\u0003"]])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.terminal).toContain("smtp-bridge: interrupted")
    expect(result.terminal).not.toContain("half typed")
  })

  it("at a terminal refuses a password past 1024 characters (a runaway paste) with exit 1", async () => {
    const argv = await commandFor(runtime, ["hash-password", "--user", user])
    const result = await onTerminal(argv.flat(), [["Password: ", "x".repeat(1500)]])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.terminal).toContain("smtp-bridge: the password is longer than 1024 characters")
  })

  it("reads the password from a piped stdin and prints nothing but the line", async () => {
    const [command, args] = await commandFor(runtime, ["hash-password", "--user", user])
    const result = await run(command, args, { input: `${password}\n`, timeoutMs: 60_000, env: { NO_COLOR: "1" } })
    expect(result.code, result.stderr).toBe(0)
    await expectLineFor(result.stdout, password)
    expect(result.stderr.replace(/^.*ExperimentalWarning.*\n(.*\n)?/m, "")).toBe("")
  })
})
