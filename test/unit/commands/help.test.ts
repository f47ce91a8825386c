import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ConfigFlags from "../../../src/commands/ConfigFlags.ts"
import * as FlagOptions from "../../../src/commands/FlagOptions.ts"
import * as Help from "../../../src/commands/Help.ts"
import * as Resolve from "../../../src/config/Resolve.ts"

const help = Help.render("serve", false)
const lineOf = (flag: string) => help.split("\n").find((l) => l.startsWith(`  --${flag} `) || l === `  --${flag}`)

describe("serve --help", () => {
  it("gives every flag one line with a description and a default", () => {
    const docs = Object.values(ConfigFlags.docs)
    expect(docs).toHaveLength(Object.keys(FlagOptions.options).length)
    for (const doc of docs) {
      const line = lineOf(doc.name)
      expect(line, doc.name).toMatch(/^ {2}--\S+.* {2,}\S.* \[default: [^\]]+\]$/)
      expect(line).not.toContain("A user-defined piece of text")
    }
    expect(help.split("\n").filter((l) => /^ {2}--/.test(l))).toHaveLength(docs.length + 3)
  })

  it("groups the flags: listeners and TLS, authentication, policy, delivery, limits, operations", () => {
    const headings = help.split("\n").filter((l) => ConfigFlags.groups.includes(l as never))
    expect(headings).toEqual(["Listeners and TLS", "Authentication", "Policy", "Delivery", "Limits", "Operations"])
    const position = (flag: string) => help.indexOf(`  --${flag} `)
    expect(position("tls-cert")).toBeLessThan(help.indexOf("\nAuthentication"))
    expect(position("users")).toBeGreaterThan(help.indexOf("\nAuthentication"))
    expect(position("max-size")).toBeGreaterThan(help.indexOf("\nLimits"))
  })

  it.effect("shows the defaults the config resolves to when no flag and no file is given", () =>
    Effect.gen(function*() {
      const config = yield* Resolve.resolve({}, "flags")
      expect(lineOf("listen")).toContain(`[default: ${config.listeners.map((l) => `${l.host}:${l.port}`).join(", ")}]`)
      expect(lineOf("max-size")).toContain(`[default: ${config.limits.maxMessageSize} `)
      expect(lineOf("max-recipients")).toContain(`[default: ${config.limits.maxRecipients}]`)
      expect(lineOf("maildir")).toContain(`[default: ${Resolve.defaults.maildir}]`)
    }))

  it("has no colour codes unless asked, and bold headings when asked", () => {
    expect(help).not.toMatch(/\u001b/)
    expect(Help.render("serve", true)).toContain("\u001b[1mPolicy\u001b[0m")
  })

  it("is asked for by serve, check-config and plugins with --help or -h, not by other commands", () => {
    expect(Help.requested(["serve", "--listen", "127.0.0.1:0", "--help"])).toBe("serve")
    expect(Help.requested(["check-config", "-h"])).toBe("check-config")
    expect(Help.requested(["plugins", "--help"])).toBe("plugins")
    expect(Help.requested(["serve"])).toBeUndefined()
    expect(Help.requested(["queue", "--help"])).toBeUndefined()
    expect(Help.requested(["--help"])).toBeUndefined()
  })

  it("moves --log-level to right after the subcommand, where @effect/cli reads it, keeping the other arguments in order", () => {
    expect(Help.hoistLogLevel(["serve", "--listen", "127.0.0.1:0", "--log-level", "debug", "--trust", "x"])).toEqual(
      ["serve", "--log-level", "debug", "--listen", "127.0.0.1:0", "--trust", "x"]
    )
    expect(Help.hoistLogLevel(["check-config", "--users", "f", "--log-level=warning"])).toEqual(["check-config", "--log-level=warning", "--users", "f"])
    expect(Help.hoistLogLevel(["serve", "--log-level", "debug", "--listen", "x"])).toEqual(["serve", "--log-level", "debug", "--listen", "x"])
    expect(Help.hoistLogLevel(["serve", "--listen", "x"])).toEqual(["serve", "--listen", "x"])
    expect(Help.hoistLogLevel(["--version"])).toEqual(["--version"])
  })
})
