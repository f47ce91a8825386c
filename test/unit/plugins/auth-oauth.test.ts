/** auth-oauth's client messages (RFC 7628 3.1, XOAUTH2), its error challenges, and its options. */
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import * as Messages from "../../../plugins/auth-oauth/Messages.ts"
import { Options } from "../../../plugins/auth-oauth/options.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

describe("OAUTHBEARER messages (RFC 7628 3.1)", () => {
  it("reads the authzid and the bearer token", () => {
    expect(Messages.parse("OAUTHBEARER", b64("n,a=user@example.com,\x01host=server.example.com\x01port=587\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01")))
      .toEqual({ _tag: "Bearer", user: "user@example.com", token: "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==" })
  })

  it("reads a message without authzid, the scheme in any case, and =2C/=3D in the authzid", () => {
    expect(Messages.parse("OAUTHBEARER", b64("n,,\x01auth=bearer abc\x01\x01"))).toEqual({ _tag: "Bearer", user: undefined, token: "abc" })
    expect(Messages.parse("OAUTHBEARER", b64("n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"))).toMatchObject({ user: "a,b=c" })
  })

  it.each([
    ["channel binding (p=)", "p=tls-unique,,\x01auth=Bearer t\x01\x01"],
    ["no auth", "n,,\x01host=x\x01\x01"],
    ["another scheme", "n,,\x01auth=Basic dTpw\x01\x01"],
    ["a token with a space", "n,,\x01auth=Bearer a b\x01\x01"],
    ["no final ^A^A", "n,,\x01auth=Bearer t"],
    ["an empty pair in the middle", "n,,\x01auth=Bearer t\x01\x01host=x\x01\x01"],
    ["auth twice", "n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01"],
    ["a bad =XX in the authzid", "n,a=a=41,\x01auth=Bearer t\x01\x01"],
    ["no header at all", "\x01auth=Bearer t\x01\x01"]
  ])("finds %s malformed", (_, message) => {
    expect(Messages.parse("OAUTHBEARER", b64(message))._tag).toBe("Malformed")
  })

  it("finds bytes that are not UTF-8 malformed", () => {
    expect(Messages.parse("OAUTHBEARER", Buffer.from([0x6e, 0x2c, 0xff]).toString("base64"))._tag).toBe("Malformed")
  })
})

describe("XOAUTH2 messages", () => {
  it("reads user and token", () => {
    expect(Messages.parse("XOAUTH2", b64("user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01")))
      .toEqual({ _tag: "Bearer", user: "someuser@example.com", token: "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg" })
  })

  it("needs the user", () => {
    expect(Messages.parse("XOAUTH2", b64("auth=Bearer t\x01\x01"))._tag).toBe("Malformed")
  })
})

describe("error challenges", () => {
  it("are RFC 7628's invalid_token for OAUTHBEARER and Google's 401 for XOAUTH2", () => {
    expect(JSON.parse(Buffer.from(Messages.errorChallenge("OAUTHBEARER"), "base64").toString())).toEqual({ status: "invalid_token", schemes: "bearer" })
    expect(JSON.parse(Buffer.from(Messages.errorChallenge("XOAUTH2"), "base64").toString())).toMatchObject({ status: "401" })
  })
})

describe("options", () => {
  const decode = Schema.decodeUnknownEither(Options)
  const base = { issuer: "https://idp.example/", audience: "smtp" }

  it("takes an https JWKS URL, or http to loopback", () => {
    expect(decode({ ...base, jwksUrl: "https://idp.example/jwks" })._tag).toBe("Right")
    expect(decode({ ...base, jwksUrl: "http://127.0.0.1:8080/jwks" })._tag).toBe("Right")
  })

  it("refuses http to anything else, URLs with credentials, HS256 and none", () => {
    expect(decode({ ...base, jwksUrl: "http://idp.example/jwks" })._tag).toBe("Left")
    expect(decode({ ...base, jwksUrl: "https://u:p@idp.example/jwks" })._tag).toBe("Left")
    expect(decode({ ...base, jwksUrl: "https://idp.example/jwks", algorithms: ["HS256"] })._tag).toBe("Left")
    expect(decode({ ...base, jwksUrl: "https://idp.example/jwks", algorithms: ["none"] })._tag).toBe("Left")
  })
})
