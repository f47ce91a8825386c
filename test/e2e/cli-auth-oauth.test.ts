// `--oauth-jwks URL --oauth-issuer ISS --oauth-audience AUD` through the real CLI under Bun and
// Deno, the identity claim from the config file's `{ type: "oauth" }` entry, against a loopback
// JWKS server and tokens minted here:
//
//   $ smtp-bridge serve --config FILE (auth: [{ type: "oauth", identityClaim: "upn" }]) --oauth-jwks http://127.0.0.1:P/jwks ...
//   ... auth backends oauth http://127.0.0.1:P/**** issuer https://idp.test/; mechanisms OAUTHBEARER XOAUTH2; cache off
//   C: AUTH XOAUTH2 <user=alice@example.com ^A auth=Bearer TOKEN ^A^A>       S: 235 2.7.0
//   C: AUTH OAUTHBEARER <n,a=alice@example.com, ^A auth=Bearer TOKEN ^A^A>  S: 235 2.7.0
//   C: AUTH OAUTHBEARER <a token for another audience>  S: 334 <error>  C: AQ==  S: 535 5.7.8
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { testCertificate } from "../support/certs.ts"
import { type Runtime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const issuer = "https://idp.test/"
const audience = "smtp.bridge.test"

const secured = async (port: number): Promise<{ c: Client; ehlo: string }> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  await c.command("EHLO client.test")
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  return { c, ehlo: await c.command("EHLO client.test") }
}

describe("serve --oauth-jwks --oauth-issuer --oauth-audience", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-cli-oauth-"))
  const { cert, key } = testCertificate()
  let jwks: http.Server
  let jwksUrl: string
  let mint: (claims: Record<string, unknown>, aud?: string) => Promise<string>
  let config: string

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true })
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }
    mint = (claims, aud = audience) =>
      new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "k1", typ: "JWT" }).setIssuer(issuer).setAudience(aud).setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600).sign(privateKey)
    jwks = http.createServer((_, res) => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })))
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve))
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`
    config = path.join(dir, "smtp-bridge.config.ts")
    // The flags say which issuer; the file's entry of the same type picks the claim naming the user.
    fs.writeFileSync(config, `export default { auth: [{ type: "oauth", identityClaim: "upn" }], rateLimit: { authFailures: false } }\n`)
  })
  afterAll(async () => {
    jwks?.closeAllConnections()
    await new Promise((resolve) => jwks?.close(resolve))
  })

  it.each<Runtime>(["bun", "deno"])("under %s: names the OAuth backend and its mechanisms, and apps log in with XOAUTH2 and OAUTHBEARER", async (runtime) => {
    const cli = await spawnCli(runtime, [
      "serve", "--config", config, "--listen", "127.0.0.1:0", "--hostname", "bridge.test", "--maildir", path.join(dir, "mail"),
      "--tls-cert", cert, "--tls-key", key, "--oauth-jwks", jwksUrl, "--oauth-issuer", issuer, "--oauth-audience", audience
    ])
    try {
      const [line, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+).*/, 30_000)
      expect(line).toContain(`auth backends oauth http://127.0.0.1:${(jwks.address() as AddressInfo).port}/**** issuer ${issuer}; mechanisms OAUTHBEARER XOAUTH2; cache off`)
      const p = Number(port)
      const token = await mint({ upn: "alice@example.com", email: "someone-else@example.com" })

      const first = await secured(p)
      expect(first.ehlo).toMatch(/AUTH .*OAUTHBEARER/)
      expect(first.ehlo).toMatch(/AUTH .*XOAUTH2/)
      // Only the mechanisms the start-up line names: no backend checks passwords, so no PLAIN or LOGIN.
      expect(first.ehlo).not.toMatch(/AUTH .*PLAIN/)
      expect(await first.c.command(`AUTH XOAUTH2 ${b64(`user=alice@example.com\x01auth=Bearer ${token}\x01\x01`)}`)).toMatch(/^235 2\.7\.0 /)
      first.c.close()

      const second = await secured(p)
      expect(await second.c.command(`AUTH OAUTHBEARER ${b64(`n,a=alice@example.com,\x01auth=Bearer ${token}\x01\x01`)}`)).toMatch(/^235 2\.7\.0 /)
      second.c.close()

      // The file's identityClaim applies: the token's email is not the user it names.
      const third = await secured(p)
      expect(await third.c.command(`AUTH OAUTHBEARER ${b64(`n,a=someone-else@example.com,\x01auth=Bearer ${token}\x01\x01`)}`)).toMatch(/^334 /)
      expect(await third.c.command("AQ==")).toMatch(/^535 5\.7\.8 /)
      third.c.close()

      const fourth = await secured(p)
      const other = await mint({ upn: "alice@example.com" }, "another.audience")
      expect(await fourth.c.command(`AUTH OAUTHBEARER ${b64(`n,a=alice@example.com,\x01auth=Bearer ${other}\x01\x01`)}`)).toMatch(/^334 /)
      expect(await fourth.c.command("AQ==")).toMatch(/^535 5\.7\.8 /)
      fourth.c.close()
    } finally {
      await cli.kill()
    }
  }, 60_000)
})
