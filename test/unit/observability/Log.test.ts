import { describe, expect, it } from "@effect/vitest"
import { Cause, FiberId, FiberRefs, HashMap, List, type Logger, LogLevel } from "effect"
import * as Log from "../../../src/observability/Log.ts"

const options = (annotations: Record<string, unknown>, message: unknown = "message 1A2B: 250 Ok"): Logger.Logger.Options<unknown> => ({
  fiberId: FiberId.none,
  logLevel: LogLevel.Info,
  message,
  cause: Cause.empty,
  context: FiberRefs.empty(),
  spans: List.empty(),
  annotations: HashMap.fromIterable(Object.entries(annotations)),
  date: new Date("2025-01-02T03:04:05.000Z")
})

describe("Log", () => {
  it("picks pretty for a terminal and JSON otherwise, unless a format is asked for", () => {
    expect(Log.formatFor(undefined, true)).toBe("pretty")
    expect(Log.formatFor(undefined, false)).toBe("json")
    expect(Log.formatFor("json", true)).toBe("json")
  })

  it("writes one JSON object per event, with annotations such as session and transaction as fields", () => {
    const line = Log.json.log(options({ session: "S1", transaction: "T1" }))
    expect(line).not.toContain("\n")
    expect(JSON.parse(line)).toEqual({
      time: "2025-01-02T03:04:05.000Z",
      level: "INFO",
      message: "message 1A2B: 250 Ok",
      session: "S1",
      transaction: "T1"
    })
  })

  it("masks annotations named like secrets, and never lets one replace the message", () => {
    const record = Log.record(options({ password: "hunter2", webhookSecret: "k", message: "spoofed" }))
    expect(record).toMatchObject({ message: "message 1A2B: 250 Ok", password: "(hidden)", webhookSecret: "(hidden)" })
  })

  it("writes one readable line in the pretty format, fields after the message", () => {
    expect(Log.pretty.log(options({ session: "S1" }))).toBe("2025-01-02T03:04:05.000Z INFO  message 1A2B: 250 Ok  session=S1")
  })
})
