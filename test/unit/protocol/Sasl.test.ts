import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Sasl from "../../../src/protocol/Sasl.ts"
import { text } from "./helpers.ts"

describe("Sasl", () => {
  describe("decodeBase64", () => {
    it("decodes padded and unpadded groups", () => {
      expect(text(Sasl.decodeBase64("TWFu")!)).toBe("Man")
      expect(text(Sasl.decodeBase64("TWE=")!)).toBe("Ma")
      expect(text(Sasl.decodeBase64("TQ==")!)).toBe("M")
    })

    it("decodes the empty string to an empty array", () => {
      expect(Sasl.decodeBase64("")).toEqual(new Uint8Array(0))
    })

    it.each(["TWF", "TW=u", "T===", "====", "TWFu\r\n", "TW u", "TWF-", "TWF_", "TQ==TQ==", "TQ", "ö==="])(
      "rejects %j",
      (input) => {
        expect(Sasl.decodeBase64(input)).toBeUndefined()
      }
    )

    it("round-trips any bytes with encodeBase64", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
          expect(Sasl.decodeBase64(Sasl.encodeBase64(b))).toEqual(b)
        })
      )
    })

    it("agrees with the platform's base64 encoder", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
          expect(Sasl.encodeBase64(b)).toBe(btoa(String.fromCharCode(...b)))
        })
      )
    })
  })

  describe("decodePlain", () => {
    it("decodes user name and password without authzid", () => {
      expect(Sasl.decodePlain(Sasl.encodeBase64("\0user\0secret"))).toEqual({ authzid: undefined, username: "user", password: "secret" })
    })

    it("decodes an authzid", () => {
      expect(Sasl.decodePlain(Sasl.encodeBase64("admin\0user\0secret"))).toEqual({ authzid: "admin", username: "user", password: "secret" })
    })

    it("decodes UTF-8 credentials", () => {
      expect(Sasl.decodePlain(Sasl.encodeBase64("\0jöhn\0pässwörd"))).toMatchObject({ username: "jöhn", password: "pässwörd" })
    })

    it.each([
      ["invalid base64", "!!!!"],
      ["two fields", Sasl.encodeBase64("user\0secret")],
      ["four fields", Sasl.encodeBase64("a\0user\0secret\0x")],
      ["an empty user name", Sasl.encodeBase64("\0\0secret")],
      ["an empty password", Sasl.encodeBase64("\0user\0")],
      ["an empty response", ""],
      ["invalid UTF-8", Sasl.encodeBase64(Uint8Array.of(0, 0xff, 0, 0x61))]
    ])("refuses %s", (_, response) => {
      expect(Sasl.decodePlain(response)).toBeUndefined()
    })
  })

  describe("decodeLoginField", () => {
    it("decodes a user name", () => {
      expect(Sasl.decodeLoginField("dXNlcg==")).toBe("user")
    })

    it("decodes the prompts", () => {
      expect(Sasl.decodeLoginField(Sasl.loginUsernamePrompt)).toBe("Username:")
      expect(Sasl.decodeLoginField(Sasl.loginPasswordPrompt)).toBe("Password:")
    })

    it("refuses invalid base64, invalid UTF-8 and NUL", () => {
      expect(Sasl.decodeLoginField("dXNlcg")).toBeUndefined()
      expect(Sasl.decodeLoginField(Sasl.encodeBase64(Uint8Array.of(0xc3)))).toBeUndefined()
      expect(Sasl.decodeLoginField(Sasl.encodeBase64("a\0b"))).toBeUndefined()
    })
  })

  it("recognizes * as a cancelled exchange", () => {
    expect(Sasl.isCancel("*")).toBe(true)
    expect(Sasl.isCancel("**")).toBe(false)
    expect(Sasl.isCancel("")).toBe(false)
  })
})
