import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Command from "../../../src/protocol/Command.ts"
import type * as Reply from "../../../src/protocol/Reply.ts"

const parse = (line: string, smtputf8 = false) => Command.parse(line, { smtputf8 })

const command = (line: string, smtputf8 = false): Command.Command => {
  const result = parse(line, smtputf8)
  if (result._tag !== "Ok") throw new Error(`expected ${line} to parse, got ${result.reply.code} ${result.reply.lines[0]}`)
  return result.command
}

/** The reply as `code enhanced`, which is what the specifications name. */
const reply = (line: string, smtputf8 = false): string => {
  const result = parse(line, smtputf8)
  if (result._tag !== "Error") throw new Error(`expected ${line} to be refused`)
  const r: Reply.Reply = result.reply
  return `${r.code} ${r.enhanced}`
}

describe("Command.parse", () => {
  describe("verbs", () => {
    it("reads verbs case-insensitively", () => {
      expect(command("noop")).toEqual({ verb: "NOOP" })
      expect(command("eHlO client.example")).toEqual({ verb: "EHLO", domain: "client.example" })
    })

    it.each(["HELO", "EHLO", "LHLO"])("reads %s with its domain", (verb) => {
      expect(command(`${verb} [192.0.2.1]`)).toEqual({ verb, domain: "[192.0.2.1]" })
    })

    it.each(["DATA", "RSET", "QUIT", "STARTTLS"])("reads %s without arguments", (verb) => {
      expect(command(verb)).toEqual({ verb })
    })

    it("tolerates trailing spaces", () => {
      expect(command("QUIT  ")).toEqual({ verb: "QUIT" })
    })

    it("accepts any argument to NOOP, VRFY, EXPN and HELP", () => {
      expect(command("NOOP anything at all")).toEqual({ verb: "NOOP" })
      expect(command("VRFY john")).toEqual({ verb: "VRFY", argument: "john" })
      expect(command("EXPN")).toEqual({ verb: "EXPN", argument: "" })
      expect(command("HELP mail from")).toEqual({ verb: "HELP", argument: "mail from" })
    })

    it("reads BDAT with a size and an optional LAST", () => {
      expect(command("BDAT 1000")).toEqual({ verb: "BDAT", size: 1000, last: false })
      expect(command("bdat 0 last")).toEqual({ verb: "BDAT", size: 0, last: true })
    })

    it("reads AUTH with the mechanism upper-cased and an optional initial response", () => {
      expect(command("AUTH plain")).toEqual({ verb: "AUTH", mechanism: "PLAIN", initialResponse: undefined })
      expect(command("AUTH PLAIN AHVzZXIAcGFzcw==")).toEqual({ verb: "AUTH", mechanism: "PLAIN", initialResponse: "AHVzZXIAcGFzcw==" })
    })

    it("reads the AUTH initial response = as empty", () => {
      expect(command("AUTH PLAIN =")).toEqual({ verb: "AUTH", mechanism: "PLAIN", initialResponse: "" })
    })

    it("rejects an unknown verb with 500 5.5.2", () => {
      expect(reply("FOO bar")).toBe("500 5.5.2")
      expect(reply("")).toBe("500 5.5.2")
      expect(reply("GET / HTTP/1.1")).toBe("500 5.5.2")
    })

    it.each(["DATA x", "QUIT x", "RSET x", "STARTTLS x", "EHLO", "HELO", "EHLO a b", "EHLO a\tb", "BDAT", "BDAT x", "BDAT -1", "BDAT 10 MORE",
      "BDAT 10 LAST x", "AUTH", "AUTH PLAIN a b", "AUTH PL@IN"])(
      "rejects %j with 501 5.5.4",
      (line) => {
        expect(reply(line)).toBe("501 5.5.4")
      }
    )

    it.each([["bare CR", "NOOP\rQUIT"], ["NUL", "NOOP\x00"], ["LF", "NOOP\nQUIT"], ["ESC", "HELP \x1b[31m"], ["DEL", "NOOP\x7f"]])(
      "rejects a %s in a command with 500 5.5.2",
      (_, line) => {
        const result = parse(line)
        expect(result).toEqual({ _tag: "Error", reply: Command.invalidCharacter })
        expect(reply(line)).toBe("500 5.5.2")
      }
    )

    it("allows a TAB inside an argument", () => {
      expect(command("NOOP \tx")).toEqual({ verb: "NOOP" })
    })
  })

  describe("MAIL", () => {
    it("reads the sender", () => {
      expect(command("MAIL FROM:<john@example.com>")).toEqual({
        verb: "MAIL",
        from: { local: "john", domain: "example.com", address: "john@example.com" },
        params: { raw: {} }
      })
    })

    it("reads the null sender", () => {
      expect(command("mail from:<>")).toMatchObject({ verb: "MAIL", from: null })
    })

    it("tolerates one space after FROM:", () => {
      expect(command("MAIL FROM: <john@example.com>")).toMatchObject({ from: { address: "john@example.com" } })
    })

    it("reads a quoted local part holding spaces and >", () => {
      expect(command("MAIL FROM:<\"a >b\"@example.com> SIZE=10")).toMatchObject({ from: { local: "a >b" }, params: { size: 10 } })
    })

    it("reads every supported parameter", () => {
      const mail = command("MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=<> REQUIRETLS")
      expect(mail).toEqual({
        verb: "MAIL",
        from: { local: "a", domain: "b.example", address: "a@b.example" },
        params: {
          size: 1000,
          body: "8BITMIME",
          smtputf8: true,
          ret: "HDRS",
          envid: "QQ+2B1",
          auth: "<>",
          requireTls: true,
          raw: { SIZE: "1000", BODY: "8bitmime", SMTPUTF8: undefined, RET: "hdrs", ENVID: "QQ+2B1", AUTH: "<>", REQUIRETLS: undefined }
        }
      })
    })

    it("omits absent parameters instead of setting them undefined", () => {
      const mail = command("MAIL FROM:<a@b> BODY=7BIT")
      expect(mail.verb === "MAIL" && Object.keys(mail.params).sort()).toEqual(["body", "raw"])
    })

    it("accepts a UTF-8 sender when the same line carries SMTPUTF8", () => {
      expect(command("MAIL FROM:<jöhn@例え.jp> SMTPUTF8")).toMatchObject({ from: { local: "jöhn" }, params: { smtputf8: true } })
    })

    it("rejects a UTF-8 sender without SMTPUTF8 with 553 5.6.7", () => {
      expect(reply("MAIL FROM:<jöhn@example.com>")).toBe("553 5.6.7")
      // The transaction option is about RCPT: MAIL declares SMTPUTF8 itself.
      expect(reply("MAIL FROM:<jöhn@example.com>", true)).toBe("553 5.6.7")
    })

    it.each(["MAIL", "MAIL TO:<a@b>", "MAIL FROM <a@b>", "MAIL FROM :<a@b>", "MAIL <a@b>"])("rejects %j with 501 5.5.4", (line) => {
      expect(reply(line)).toBe("501 5.5.4")
    })

    it.each(["MAIL FROM:", "MAIL FROM:a@b", "MAIL FROM:<a@b", "MAIL FROM:  <a@b>", "MAIL FROM:<a b@c>", "MAIL FROM:<@b>",
      "MAIL FROM:<postmaster>"])(
      "rejects the bad sender path in %j with 501 5.1.7",
      (line) => {
        expect(reply(line)).toBe("501 5.1.7")
      }
    )

    it("rejects a sender address too long with 501 5.1.7", () => {
      const result = parse(`MAIL FROM:<${"a".repeat(65)}@example.com>`)
      expect(result).toMatchObject({ _tag: "Error", reply: { code: 501, enhanced: "5.1.7", lines: ["Sender address too long"] } })
    })

    it("rejects text glued to the path with 501 5.5.4", () => {
      expect(reply("MAIL FROM:<a@b>SIZE=10")).toBe("501 5.5.4")
    })

    it.each([
      ["an unknown parameter", "MAIL FROM:<a@b> FOO=bar"],
      ["a non-numeric SIZE", "MAIL FROM:<a@b> SIZE=ten"],
      ["a SIZE without value", "MAIL FROM:<a@b> SIZE"],
      ["an unknown BODY", "MAIL FROM:<a@b> BODY=9BIT"],
      ["BODY=BINARYMIME", "MAIL FROM:<a@b> BODY=BINARYMIME"],
      ["SMTPUTF8 with a value", "MAIL FROM:<a@b> SMTPUTF8=yes"],
      ["REQUIRETLS with a value", "MAIL FROM:<a@b> REQUIRETLS=yes"],
      ["an unknown RET", "MAIL FROM:<a@b> RET=ALL"],
      ["an ENVID that is not xtext", "MAIL FROM:<a@b> ENVID=a+zz"],
      ["an ENVID over 100 characters", `MAIL FROM:<a@b> ENVID=${"x".repeat(101)}`],
      ["an AUTH that is not xtext", "MAIL FROM:<a@b> AUTH=a+"],
      ["an empty value", "MAIL FROM:<a@b> SIZE="],
      ["a value holding =", "MAIL FROM:<a@b> ENVID=a=b"],
      ["a malformed keyword", "MAIL FROM:<a@b> -X=1"],
      ["UTF-8 in a value", "MAIL FROM:<a@b> ENVID=ö"]
    ])("rejects %s with 555 5.5.4", (_, line) => {
      expect(reply(line)).toBe("555 5.5.4")
    })

    it("says BINARYMIME is not supported", () => {
      expect(parse("MAIL FROM:<a@b> BODY=BINARYMIME")).toMatchObject({ reply: { lines: ["BINARYMIME not supported"] } })
    })

    it("rejects a duplicate parameter with 501 5.5.4", () => {
      expect(reply("MAIL FROM:<a@b> SIZE=1 size=2")).toBe("501 5.5.4")
    })
  })

  describe("RCPT", () => {
    it("reads the recipient", () => {
      expect(command("RCPT TO:<jane@example.com>")).toEqual({
        verb: "RCPT",
        to: { local: "jane", domain: "example.com", address: "jane@example.com" },
        params: { raw: {} }
      })
    })

    it("tolerates one space after TO:", () => {
      expect(command("rcpt to: <jane@example.com>")).toMatchObject({ to: { address: "jane@example.com" } })
    })

    it("reads the bare <Postmaster>", () => {
      expect(command("RCPT TO:<Postmaster>")).toMatchObject({ to: { local: "Postmaster", domain: "" } })
    })

    it("reads NOTIFY and ORCPT", () => {
      expect(command("RCPT TO:<a@b> NOTIFY=success,Delay ORCPT=rfc822;a+40b.example")).toEqual({
        verb: "RCPT",
        to: { local: "a", domain: "b", address: "a@b" },
        params: {
          notify: ["SUCCESS", "DELAY"],
          orcpt: "rfc822;a+40b.example",
          raw: { NOTIFY: "success,Delay", ORCPT: "rfc822;a+40b.example" }
        }
      })
    })

    it("reads NOTIFY=NEVER", () => {
      expect(command("RCPT TO:<a@b> NOTIFY=NEVER")).toMatchObject({ params: { notify: ["NEVER"] } })
    })

    it("accepts a UTF-8 recipient when the transaction declared SMTPUTF8", () => {
      expect(command("RCPT TO:<jöhn@例え.jp>", true)).toMatchObject({ to: { domain: "例え.jp" } })
    })

    it("rejects a UTF-8 recipient without SMTPUTF8 with 553 5.6.7", () => {
      expect(reply("RCPT TO:<jöhn@example.com>")).toBe("553 5.6.7")
    })

    it.each(["RCPT", "RCPT FROM:<a@b>", "RCPT TO <a@b>"])("rejects %j with 501 5.5.4", (line) => {
      expect(reply(line)).toBe("501 5.5.4")
    })

    it.each(["RCPT TO:", "RCPT TO:<>", "RCPT TO:a@b", "RCPT TO:<a@b", "RCPT TO:<a@-b>", "RCPT TO:<postmaster@>"])(
      "rejects the bad recipient path in %j with 501 5.1.3",
      (line) => {
        expect(reply(line)).toBe("501 5.1.3")
      }
    )

    it("rejects a recipient address too long with 501 5.1.3", () => {
      const result = parse(`RCPT TO:<john@${Array.from({ length: 5 }, () => "d".repeat(60)).join(".")}>`)
      expect(result).toMatchObject({ _tag: "Error", reply: { code: 501, enhanced: "5.1.3", lines: ["Recipient address too long"] } })
    })

    it.each([
      ["an unknown parameter", "RCPT TO:<a@b> SIZE=10"],
      ["NEVER with another value", "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS"],
      ["an unknown NOTIFY value", "RCPT TO:<a@b> NOTIFY=ALWAYS"],
      ["a repeated NOTIFY value", "RCPT TO:<a@b> NOTIFY=DELAY,DELAY"],
      ["an empty NOTIFY list item", "RCPT TO:<a@b> NOTIFY=SUCCESS,"],
      ["an ORCPT without addr-type", "RCPT TO:<a@b> ORCPT=a+40b"],
      ["an ORCPT with bad xtext", "RCPT TO:<a@b> ORCPT=rfc822;a+4"],
      ["an ORCPT without an address", "RCPT TO:<a@b> ORCPT=rfc822;"]
    ])("rejects %s with 555 5.5.4", (_, line) => {
      expect(reply(line)).toBe("555 5.5.4")
    })

    it("rejects a duplicate parameter with 501 5.5.4", () => {
      expect(reply("RCPT TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER")).toBe("501 5.5.4")
    })
  })

  it("never throws and always answers with a 5xx reply or a command", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.boolean(), (line, smtputf8) => {
        const result = Command.parse(line, { smtputf8 })
        if (result._tag === "Error") expect(result.reply.code).toBeGreaterThanOrEqual(500)
      }),
      { numRuns: 2000 }
    )
  })
})
