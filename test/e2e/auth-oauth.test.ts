/**
 * auth-oauth through the bridge: JWT access tokens minted in the test (RS256 and EdDSA) against
 * a loopback JWKS server, over nodemailer's XOAUTH2 and an OAUTHBEARER exchange (RFC 7628)
 * written here; bad tokens get the RFC 7628 error challenge then 535 5.7.8; a key set that
 * redirects or never comes gives 454 4.7.0.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { authOauth } from "../../plugins/auth-oauth/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const issuer = "https://idp.test/"
const audience = "smtp.bridge.test"

type Key = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"]
interface Signer {
  readonly kid: string
  readonly alg: "RS256" | "EdDSA"
  readonly privateKey: Key
  readonly jwk: JWK
}

const signer = async (kid: string, alg: "RS256" | "EdDSA"): Promise<Signer> => {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } }
}

const now = () => Math.floor(Date.now() / 1000)

const mint = (s: Signer, claims: Record<string, unknown> = {}, options: { readonly exp?: number; readonly iss?: string; readonly aud?: string } = {}) =>
  new SignJWT({ email: "alice@example.com", ...claims })
    .setProtectedHeader({ alg: s.alg, kid: s.kid, typ: "JWT" })
    .setIssuer(options.iss ?? issuer)
    .setAudience(options.aud ?? audience)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? now() + 600)
    .sign(s.privateKey)

/** `alg: none`, or HS256 with the issuer's public key as the HMAC secret (the classic confusion attack). */
const unsigned = (claims: Record<string, unknown>) =>
  `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`

const hs256WithPublicKey = (s: Signer) => {
  const secret = new TextEncoder().encode(JSON.stringify(s.jwk))
  return new SignJWT({ email: "alice@example.com" }).setProtectedHeader({ alg: "HS256", kid: s.kid }).setIssuer(issuer).setAudience(audience)
    .setExpirationTime(now() + 600).sign(secret)
}

/** A JWKS endpoint on loopback: serves `keys`, counts requests; or redirects, or never answers. */
const jwksServer = async (behaviour: "serve" | "redirect" | "hang") => {
  const state = { keys: [] as Array<JWK>, requests: 0, redirectTargetHits: 0 }
  const server = http.createServer((req, res) => {
    if (req.url === "/target") {
      state.redirectTargetHits++
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys }))
      return
    }
    state.requests++
    if (behaviour === "redirect") return void res.writeHead(302, { location: `http://127.0.0.1:${(server.address() as AddressInfo).port}/target` }).end()
    if (behaviour === "hang") return
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

const secured = async (port: number): Promise<{ c: Client; ehlo: string }> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  await c.command("EHLO client.test")
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  return { c, ehlo: await c.command("EHLO client.test") }
}

/** C: AUTH OAUTHBEARER <n,a=user,^Ahost=..^Aport=..^Aauth=Bearer token^A^A>; on the error challenge, the dummy ^A response. */
const oauthbearer = async (port: number, token: string, user: string | undefined = "alice@example.com") => {
  const { c } = await secured(port)
  const message = `n,${user === undefined ? "" : `a=${user}`},\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer ${token}\x01\x01`
  const first = await c.command(`AUTH OAUTHBEARER ${b64(message)}`)
  if (!first.startsWith("334 ")) return { c, first, final: first }
  return { c, first, final: await c.command(b64("\x01")) }
}

const errorStatus = (reply: string): unknown => JSON.parse(Buffer.from(reply.slice(4), "base64").toString("utf8"))

const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

describe("auth-oauth", () => {
  const { cert, key } = testCertificate()
  let jwks: Awaited<ReturnType<typeof jwksServer>>
  let bridge: TestBridge
  let rsa: Signer
  let ed: Signer
  let other: Signer

  beforeAll(async () => {
    rsa = await signer("rsa-1", "RS256")
    ed = await signer("ed-1", "EdDSA")
    other = await signer("rsa-other", "RS256")
    jwks = await jwksServer("serve")
    jwks.state.keys = [rsa.jwk, ed.jwk]
    bridge = await startBridge({
      tls: { cert, key },
      rateLimit: wideThrottle,
      plugins: [authOauth({ jwksUrl: jwks.url, issuer, audience, refreshCooldown: "300 millis", clockSkew: "5 seconds" })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await jwks?.close()
  })

  it("advertises OAUTHBEARER and XOAUTH2 over TLS, and no PLAIN/LOGIN without a password backend", async () => {
    const { c, ehlo } = await secured(bridge.port)
    expect(ehlo).toMatch(/^250[- ]AUTH OAUTHBEARER XOAUTH2$/m)
    c.close()
  })

  describe("nodemailer's XOAUTH2", () => {
    const transport = (accessToken: string) =>
      nodemailer.createTransport({
        host: "127.0.0.1",
        port: bridge.port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { type: "OAuth2", user: "alice@example.com", accessToken },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000
      })

    it("authenticates with an RS256 token and delivers: 250 2.0.0", async () => {
      const before = bridge.delivered().length
      const t = transport(await mint(rsa))
      try {
        const info = await t.sendMail({ from: "alice@example.com", to: "bob@example.net", subject: "xoauth2", text: "hi" })
        expect(info.response).toMatch(/^250 2\.0\.0 /)
      } finally {
        t.close()
      }
      expect(bridge.delivered().length).toBe(before + 1)
    })

    it("fails with 535 5.7.8 for an expired token", async () => {
      const t = transport(await mint(rsa, {}, { exp: now() - 3600 }))
      try {
        await expect(t.sendMail({ from: "alice@example.com", to: "bob@example.net", text: "hi" })).rejects.toMatchObject({ code: "EAUTH", response: expect.stringMatching(/^535 5\.7\.8 /) })
      } finally {
        t.close()
      }
    })
  })

  describe("OAUTHBEARER (RFC 7628)", () => {
    it("authenticates with an EdDSA token: 235 2.7.0, as the token's email", async () => {
      const { c, final } = await oauthbearer(bridge.port, await mint(ed))
      expect(final).toBe("235 2.7.0 Authentication successful")
      expect(await c.command("MAIL FROM:<alice@example.com>")).toMatch(/^250 /)
      c.close()
    })

    it("authenticates without the optional authzid (the identity is the token's)", async () => {
      const { c, final } = await oauthbearer(bridge.port, await mint(rsa), undefined)
      expect(final).toBe("235 2.7.0 Authentication successful")
      c.close()
    })

    it("asks for the message with an empty 334 when AUTH came without an initial response", async () => {
      const { c } = await secured(bridge.port)
      expect(await c.command("AUTH OAUTHBEARER")).toBe("334 ")
      expect(await c.command(b64(`n,,\x01auth=Bearer ${await mint(rsa)}\x01\x01`))).toBe("235 2.7.0 Authentication successful")
      c.close()
    })

    it.each([
      ["an expired token", () => mint(rsa, {}, { exp: now() - 3600 })],
      ["a token for another audience", () => mint(rsa, {}, { aud: "someone-else" })],
      ["a token from another issuer", () => mint(rsa, {}, { iss: "https://evil.test/" })],
      ["a token signed by a key the issuer never published", () => mint(other)],
      ["alg none", () => Promise.resolve(unsigned({ email: "alice@example.com", iss: issuer, aud: audience, exp: now() + 600 }))],
      ["HS256 with the issuer's public key as secret", () => hs256WithPublicKey(rsa)],
      ["a token for another user than the one named", () => mint(rsa, { email: "mallory@example.com" })],
      ["an email the issuer says is not verified", () => mint(rsa, { email_verified: false })],
      ["an email claim that is no string", () => mint(rsa, { email: ["alice@example.com"] })],
      ["an email claim with a line break", () => mint(rsa, { email: "alice@example.com\r\n250 ok" })],
      ["a token that is no JWT", () => Promise.resolve("not-a-jwt")]
    ])("refuses %s: the invalid_token challenge, then 535 5.7.8", async (_, token) => {
      const { c, first, final } = await oauthbearer(bridge.port, await token())
      expect(first).toMatch(/^334 /)
      expect(errorStatus(first)).toMatchObject({ status: "invalid_token" })
      expect(final).toBe("535 5.7.8 Authentication credentials invalid")
      c.close()
    })

    it("answers a message that is not RFC 7628's with the error challenge too", async () => {
      const { c } = await secured(bridge.port)
      expect(errorStatus(await c.command(`AUTH OAUTHBEARER ${b64("p=tls-unique,,\x01auth=Bearer x\x01\x01")}`))).toMatchObject({ status: "invalid_token" })
      expect(await c.command("AQ==")).toBe("535 5.7.8 Authentication credentials invalid")
      c.close()
    })

    it("fetches the key set again for an unknown kid (rotated keys), at most once per refreshCooldown", async () => {
      const rotated = await signer("rsa-2", "RS256")
      const token = await mint(rotated)
      const before = jwks.state.requests
      // Not published yet: refused; the fetches it causes are rate-limited.
      for (let i = 0; i < 5; i++) expect((await oauthbearer(bridge.port, token)).final).toMatch(/^535 /)
      expect(jwks.state.requests - before).toBeLessThanOrEqual(1)
      jwks.state.keys = [rsa.jwk, ed.jwk, rotated.jwk]
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect((await oauthbearer(bridge.port, token)).final).toBe("235 2.7.0 Authentication successful")
    })
  })

  it("is guarded by the AUTH throttle: after 2 bad tokens for a user, even a good one gets 454 4.7.0", async () => {
    const strict = await startBridge({
      tls: { cert, key },
      rateLimit: { authFailures: { perIp: "100/hour", perUser: "2/hour", delay: "1 millis", maxDelay: "1 millis" } },
      plugins: [authOauth({ jwksUrl: jwks.url, issuer, audience })]
    })
    try {
      for (let i = 0; i < 2; i++) expect((await oauthbearer(strict.port, await mint(rsa, {}, { exp: now() - 3600 }))).final).toMatch(/^535 5\.7\.8 /)
      const { c, final } = await oauthbearer(strict.port, await mint(rsa))
      expect(final).toMatch(/^454 4\.7\.0 Too many authentication failures for this user/)
      // Withheld: the session is not authenticated.
      expect(await c.command("MAIL FROM:<alice@example.com>")).toMatch(/^530 /)
      c.close()
    } finally {
      await strict.stop()
    }
  })

  describe("when the key set cannot be had", () => {
    it("never follows a redirect of the JWKS URL: 454 4.7.0, the target never asked", async () => {
      const redirecting = await jwksServer("redirect")
      redirecting.state.keys = [rsa.jwk]
      const b = await startBridge({ tls: { cert, key }, plugins: [authOauth({ jwksUrl: redirecting.url, issuer, audience })] })
      try {
        const { c, final } = await oauthbearer(b.port, await mint(rsa))
        expect(final).toMatch(/^454 4\.7\.0 /)
        expect(redirecting.state.requests).toBeGreaterThan(0)
        expect(redirecting.state.redirectTargetHits).toBe(0)
        c.close()
      } finally {
        await b.stop()
        await redirecting.close()
      }
    })

    it("answers 454 4.7.0 after the timeout when the JWKS server never answers", async () => {
      const hanging = await jwksServer("hang")
      const b = await startBridge({ tls: { cert, key }, plugins: [authOauth({ jwksUrl: hanging.url, issuer, audience, timeout: "1 second" })] })
      try {
        const started = Date.now()
        const { c, final } = await oauthbearer(b.port, await mint(rsa))
        expect(final).toMatch(/^454 4\.7\.0 /)
        expect(Date.now() - started).toBeLessThan(5_000)
        c.close()
      } finally {
        await b.stop()
        await hanging.close()
      }
    })
  })
})
