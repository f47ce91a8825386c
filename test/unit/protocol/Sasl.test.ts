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

    it.each(["QR==", "QUJ=", "TWF=", "TR==", "TWFuQR=="])("rejects %j, whose bits before the padding are not zero (RFC 4648 3.5)", (input) => {
      expect(Sasl.decodeBase64(input)).toBeUndefined()
    })

    it("refuses an AUTH PLAIN response with non-zero padding bits, which would decode like its canonical form", () => {
      const canonical = Sasl.encodeBase64("\0alice\0secreT")
      expect(canonical.endsWith("=")).toBe(true)
      expect(Sasl.decodePlain(canonical)?.password).toBe("secreT")
      // The same bytes with a stray bit set in the last character before the padding.
      const last = canonical.length - (canonical.endsWith("==") ? 3 : 2)
      const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      const forged = canonical.slice(0, last) + ALPHABET[ALPHABET.indexOf(canonical[last]!) | 1] + canonical.slice(last + 1)
      expect(forged).not.toBe(canonical)
      expect(Sasl.decodePlain(forged)).toBeUndefined()
    })

    it("rejects every non-canonical encoding: whatever it accepts re-encodes to itself", () => {
      fc.assert(
        fc.property(fc.stringMatching(/^[A-Za-z0-9+/]{2,3}$/), (group) => {
          const input = group.padEnd(4, "=")
          const decoded = Sasl.decodeBase64(input)
          if (decoded !== undefined) expect(Sasl.encodeBase64(decoded)).toBe(input)
        })
      )
    })

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
