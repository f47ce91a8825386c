/**
 * A user plugin's SASL mechanism against a real bridge, through the test SmtpClient: the
 * exchange's challenges and verdict become the replies; a step that fails, dies, hangs past the
 * plugin's `timeout` or answers nonsense is a 451 4.3.0 (as a failed `auth` hook) and the session
 * goes on; the plugin hears when the client cancels or leaves.
 *
 *   C: AUTH X-ECHO <base64 "alice">
 *   S: 334 <base64 "prove it">
 *   C: <base64 "alice-proof">
 *   S: 235 2.7.0 Authentication successful
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { definePlugin, type SaslStep, Verdict } from "../../src/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { until } from "../support/eventually.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const text = (s: string | undefined): string => Buffer.from(s ?? "", "base64").toString("utf8")
const pluginFailure = "451 4.3.0 Temporary failure, please try again later"

const aborted: Array<string> = []

/** X-ECHO: the client names a user, then proves it with "<user>-proof"; X-BOOM fails, X-DIE dies, X-HANG never answers, X-JUNK answers no step. */
const echo = definePlugin({
  name: "echo-sasl",
  timeout: 300,
  saslMechanisms: () => ["X-ECHO", "X-BOOM", "X-DIE", "X-HANG", "X-JUNK", "PLAIN", "not a name"],
  sasl: ({ mechanism }) =>
    Effect.sync(() => {
      let user: string | undefined
      return {
        step: (response: string | undefined): Effect.Effect<SaslStep, Error> => {
          switch (mechanism) {
            case "X-BOOM":
              return Effect.fail(new Error("backend exploded"))
            case "X-DIE":
              return Effect.die(new Error("bug in the plugin"))
            case "X-HANG":
              return Effect.never
            case "X-JUNK":
              return Effect.succeed({ _tag: "Done", verdict: { _tag: "Nonsense" }, username: undefined } as unknown as SaslStep)
          }
          if (user === undefined) {
            user = text(response)
            return Effect.succeed({ _tag: "Challenge", text: b64("prove it") })
          }
          return Effect.succeed({
            _tag: "Done",
            verdict: text(response) === `${user}-proof` ? Verdict.accept({ identity: user }) : Verdict.reject("Bad proof", { code: 535, enhanced: "5.7.8" }),
            username: user
          })
        },
        abort: Effect.sync(() => void aborted.push(user ?? "?"))
      }
    })
})

describe("a plugin's SASL mechanism", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ allowInsecureAuth: true, plugins: [echo] })
  })
  afterAll(() => bridge.stop())

  const session = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    const ehlo = await c.command("EHLO client.test")
    // PLAIN is the bridge's own and a bad name is never advertised.
    expect(ehlo).toMatch(/^250 AUTH X-ECHO X-BOOM X-DIE X-HANG X-JUNK$/m)
    return c
  }

  it("relays the challenge (334) and authenticates on the plugin's Accept: 235 2.7.0", async () => {
    const c = await session()
    expect(await c.command(`AUTH X-ECHO ${b64("alice")}`)).toBe(`334 ${b64("prove it")}`)
    expect(await c.command(b64("alice-proof"))).toBe("235 2.7.0 Authentication successful")
    expect(await c.command("AUTH X-ECHO")).toBe("503 5.5.1 Already authenticated")
    c.close()
  })

  it("answers the plugin's Reject: 535 5.7.8", async () => {
    const c = await session()
    await c.command(`AUTH X-ECHO ${b64("alice")}`)
    expect(await c.command(b64("guess"))).toBe("535 5.7.8 Bad proof")
    c.close()
  })

  it.each(["X-BOOM", "X-DIE", "X-HANG", "X-JUNK"])("answers %s (failed, dead, hung, nonsense) with 451 4.3.0, and the session goes on", async (mechanism) => {
    const c = await session()
    expect(await c.command(`AUTH ${mechanism} ${b64("x")}`)).toBe(pluginFailure)
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    c.close()
  })

  it("tells the plugin when the client cancels (501 5.0.0) or leaves in the middle", async () => {
    const c = await session()
    await c.command(`AUTH X-ECHO ${b64("carol")}`)
    expect(await c.command("*")).toBe("501 5.0.0 Authentication cancelled")
    expect(aborted).toContain("carol")
    await c.command(`AUTH X-ECHO ${b64("dave")}`)
    c.close()
    await until("abort after the client left", () => aborted.includes("dave"))
  })
})
