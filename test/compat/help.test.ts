/**
 * Help as a user sees it: `serve --help` piped into a pager or a file has no colour codes, one
 * line per flag with its default, in groups; on a terminal, colour unless NO_COLOR is set.
 */
import { describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { onTerminal } from "../support/pty.ts"
import { commandFor, runtimes } from "../support/runtimes.ts"

const esc = "\u001b"
// An empty NO_COLOR counts as unset (no-color.org): the pipe alone must turn colour off.
const piped = async (runtime: (typeof runtimes)[number], args: ReadonlyArray<string>) => {
  const [command, argv] = await commandFor(runtime, args)
  return run(command, argv, { timeoutMs: 60_000, env: { NO_COLOR: "" } })
}

describe.each(runtimes)("help under %s", (runtime) => {
  it("serve --help piped: no colour codes, one line per flag with its default, grouped, under 80 lines", async () => {
    const result = await piped(runtime, ["serve", "--help"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).not.toContain(esc)
    expect(result.stdout).not.toContain("A user-defined piece of text")
    const flagLines = result.stdout.split("\n").filter((l) => /^ {2}--[a-z]/.test(l) && !/^ {2}--(help|version)\b/.test(l))
    expect(flagLines.length).toBeGreaterThan(20)
    for (const line of flagLines) expect(line).toMatch(/\S {2,}\S.*\[default: [^\]]+\]$/)
    for (const group of ["Listeners and TLS", "Authentication", "Policy", "Delivery", "Limits", "Operations"]) {
      expect(result.stdout).toContain(`\n${group}\n`)
    }
    // One screen and a half: every flag is one line, the groups keep it readable.
    expect(result.stdout.split("\n").length).toBeLessThan(80)
  })

  it("smtp-bridge --help and hash-password --help piped: no colour codes", async () => {
    for (const args of [["--help"], ["hash-password", "--help"]]) {
      const result = await piped(runtime, args)
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout, args.join(" ")).toContain("USAGE")
      expect(result.stdout, args.join(" ")).not.toContain(esc)
    }
  })

  it("on a terminal: bold headings, and none with NO_COLOR set", async () => {
    const argv = (await commandFor(runtime, ["serve", "--help"])).flat()
    const coloured = await onTerminal(argv, [], { env: { NO_COLOR: "" }, stdout: "terminal" })
    expect(coloured.terminal).toContain(`${esc}[1mPolicy${esc}[0m`)
    const plain = await onTerminal(argv, [], { env: { NO_COLOR: "1" }, stdout: "terminal" })
    expect(plain.code).toBe(0)
    expect(plain.terminal).toContain("\r\nPolicy\r\n")
    expect(plain.terminal).not.toContain(esc)
  })
})
