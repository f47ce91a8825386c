// Hostile command lines cost no more CPU per byte than ordinary ones of the same length. A regex
// that backtracks (`/[ \t]+$/` on a run of blanks not at the end of the line) made a 4 KB NOOP
// line cost 220 times an ordinary one: one client at ~600 KB/s kept a core busy.
import { describe, expect, it } from "@effect/vitest"
import * as Command from "../../../src/protocol/Command.ts"
import { costRatio } from "../../support/cost.ts"

const parse = (line: string) => () => void Command.parse(line, { smtputf8: true })
const n = 4000

// Each hostile line beside an ordinary line of the same verb and length.
const cases: ReadonlyArray<readonly [string, string, string]> = [
  ["NOOP, blanks then a letter", `NOOP ${" ".repeat(n)}x`, `NOOP ${"x".repeat(n)}x`],
  ["NOOP, tabs then a letter", `NOOP x${"\t".repeat(n)}x`, `NOOP x${"x".repeat(n)}x`],
  ["NOOP, blank and tab alternating", `NOOP ${" \t".repeat(n / 2)}x`, `NOOP ${"xy".repeat(n / 2)}x`],
  ["VRFY, blanks then a letter", `VRFY ${" ".repeat(n)}x`, `VRFY ${"x".repeat(n)}x`],
  ["EHLO, blanks then a letter", `EHLO a${" ".repeat(n)}x`, `EHLO a${"x".repeat(n)}x`],
  ["MAIL, blanks between parameters", `MAIL FROM:<a@example.com>${" ".repeat(n)}SIZE=1`, `MAIL FROM:<a@example.com> X-${"x".repeat(n)}=11`],
  ["RCPT, blanks after the path", `RCPT TO:<b@example.com>${" ".repeat(n)}x`, `RCPT TO:<b@example.com> ${"x".repeat(n)}`],
  ["AUTH, blanks then a response", `AUTH PLAIN${" ".repeat(n)}x`, `AUTH PLAIN ${"A".repeat(n)}`],
  ["RCPT, an ORCPT of xtext escapes", `RCPT TO:<b@example.com> ORCPT=rfc822;${"+2B".repeat(n / 3)}`, `RCPT TO:<b@example.com> ORCPT=rfc822;${"abc".repeat(n / 3)}`],
  ["MAIL, a quoted local part of escapes", `MAIL FROM:<"${"\\\"".repeat(n / 2)}"@example.com>`, `MAIL FROM:<"${"aa".repeat(n / 2)}"@example.com>`],
  ["MAIL, a domain of empty labels", `MAIL FROM:<a@${".".repeat(n)}>`, `MAIL FROM:<a@${"a".repeat(n)}>`],
  ["MAIL, an address literal of colons", `MAIL FROM:<a@[IPv6:${":".repeat(n)}]>`, `MAIL FROM:<a@[IPv6:${"a".repeat(n)}]>`],
  ["BDAT, blanks then LAST", `BDAT 10${" ".repeat(n)}LAST`, `BDAT 10 ${"L".repeat(n - 1)}LAST`]
]

describe("Command.parse cost per byte", () => {
  it.each(cases)("parses a 4 KB line of %s at most 10 times the cost of an ordinary one", (_, hostile, ordinary) => {
    expect(hostile.length).toBe(ordinary.length)
    expect(costRatio(parse(hostile), parse(ordinary))).toBeLessThan(10)
  })

  it("trims trailing blanks and tabs, and only those", () => {
    expect(Command.trimEndBlanks("NOOP x \t \t")).toBe("NOOP x")
    expect(Command.trimEndBlanks(" \t ")).toBe("")
    expect(Command.trimEndBlanks(`NOOP ${" ".repeat(n)}x`)).toBe(`NOOP ${" ".repeat(n)}x`)
  })
})
