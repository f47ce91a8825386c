import { describe, expect, it } from "@effect/vitest"
import * as FileLimit from "../../../src/runtime/FileLimit.ts"

const limits = (soft: string, hard: string) =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max cpu time              unlimited            unlimited            seconds   ",
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    "Max locked memory         8388608              8388608              bytes     "
  ].join("\n")

describe("FileLimit", () => {
  it("reads the soft limit on open files from /proc/<pid>/limits", () => {
    expect(FileLimit.parse(limits("1024", "524288"))).toBe(1024)
    expect(FileLimit.parse(limits("300", "300"))).toBe(300)
  })

  it("knows no limit when it is unlimited, missing or not a number", () => {
    expect(FileLimit.parse(limits("unlimited", "unlimited"))).toBeUndefined()
    expect(FileLimit.parse("Max cpu time unlimited unlimited seconds")).toBeUndefined()
    expect(FileLimit.parse(limits("-1", "-1"))).toBeUndefined()
    expect(FileLimit.parse("")).toBeUndefined()
  })

  it("reads this process's limit on Linux", () => {
    const n = FileLimit.openFiles()
    if (process.platform === "linux") expect(n === undefined || (Number.isInteger(n) && n > 0)).toBe(true)
    else expect(n).toBeUndefined()
  })

  // A session delivering a spilled message holds its socket, the spilled file and the delivery's
  // file; under Deno a file being read holds a second descriptor.
  const deno = (globalThis as { readonly Deno?: unknown }).Deno !== undefined

  it("counts three descriptors a session (four under Deno)", () => {
    expect(FileLimit.perSession).toBe(deno ? 4 : 3)
  })

  it("sets aside 128 descriptors a listener under Deno, whose node:net closes refused connections in batches (none elsewhere)", () => {
    expect(FileLimit.perListener).toBe(deno ? 128 : 0)
  })

  it("allows that many descriptors a session once the reserve is set aside, and at least one session", () => {
    expect(FileLimit.sessionsAllowed(300, 64)).toBe(deno ? 59 : 78)
    expect(FileLimit.sessionsAllowed(65536, 64 + 16)).toBe(deno ? 16364 : 21818)
    expect(FileLimit.sessionsAllowed(64, 64)).toBe(1)
    expect(FileLimit.sessionsAllowed(10, 64)).toBe(1)
  })

  it("counts what plugins open for each session when told (four milters: seven a session)", () => {
    expect(FileLimit.sessionsAllowed(300, 64, 7)).toBe(33)
    expect(FileLimit.sessionsAllowed(300, 64 + 128, 8)).toBe(13)
  })
})
