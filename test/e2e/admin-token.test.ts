// The admin listener's bearer token and its exposure warning, through a real HTTP client (fetch)
// and the real CLI under Bun.
//
//   $ SMTP_BRIDGE_ADMIN_TOKEN=... smtp-bridge serve --admin 127.0.0.1:0      (or --admin-token-file FILE)
//   GET /metrics                                   -> 401, WWW-Authenticate: Bearer realm="smtp-bridge admin"
//   GET /metrics, Authorization: Bearer <token>    -> 200
//   $ smtp-bridge serve --admin 192.0.2.1:0
//   WARN admin listener on 192.0.2.1 is not loopback and has no token: ...
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { spawnCli } from "../support/runtimes.ts"

const token = "b1f0c2d3e4a5968778695a4b3c2d1e0f"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-admin-token-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const get = async (port: number, urlPath: string, authorization?: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, authorization === undefined ? {} : { headers: { authorization } })
  return { status: response.status, challenge: response.headers.get("www-authenticate"), body: await response.text() }
}

describe("admin bearer token", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ admin: "127.0.0.1:0", adminToken: token })
  })
  afterAll(() => bridge.stop())

  it("answers 401 with a Bearer challenge on every path without the token", async () => {
    for (const p of ["/metrics", "/healthz", "/readyz", "/nope"]) {
      const r = await get(bridge.running.admin!.port, p)
      expect(r.status).toBe(401)
      expect(r.challenge).toBe(`Bearer realm="smtp-bridge admin"`)
      expect(r.body).not.toContain("smtp_bridge_")
    }
  })

  it("answers 401 to a wrong token, a prefix of the right one, and another scheme", async () => {
    const port = bridge.running.admin!.port
    for (const authorization of [`Bearer ${token.slice(0, -1)}x`, `Bearer ${token.slice(0, 16)}`, `Bearer ${token}${token}`, `Basic ${token}`, token]) {
      expect((await get(port, "/metrics", authorization)).status).toBe(401)
    }
  })

  it("serves /metrics and /healthz with 200 to the right token", async () => {
    const port = bridge.running.admin!.port
    const metrics = await get(port, "/metrics", `Bearer ${token}`)
    expect(metrics.status).toBe(200)
    expect(metrics.body).toMatch(/^# HELP smtp_bridge_/m)
    expect((await get(port, "/healthz", `bearer ${token}`)).status).toBe(200)
  })
})

/** `serve` under Bun until `pattern` is logged; the match, then the process is stopped. */
const serveUntil = async (args: ReadonlyArray<string>, env: Record<string, string>, pattern: RegExp, check?: (port: number) => Promise<void>) => {
  const cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", ...args], { env })
  try {
    const match = await cli.waitForLog(pattern, 30_000)
    if (check !== undefined) await check(Number(match[1]))
    return cli.output()
  } finally {
    await cli.kill()
  }
}

describe("admin token through the CLI", () => {
  it("reads the token from --admin-token-file: 401 without it, 200 with it, no warning on loopback", async () => {
    const file = path.join(dir, "token")
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 })
    const output = await serveUntil(["--admin", "127.0.0.1:0", "--admin-token-file", file], {}, /admin listening on http:\/\/127\.0\.0\.1:(\d+)/, async (port) => {
      expect((await get(port, "/healthz")).status).toBe(401)
      expect((await get(port, "/healthz", `Bearer ${token}`)).status).toBe(200)
    })
    expect(output).not.toContain("not loopback")
    expect(output).not.toContain(token)
  })

  it("reads the token from SMTP_BRIDGE_ADMIN_TOKEN", async () => {
    await serveUntil(["--admin", "127.0.0.1:0"], { SMTP_BRIDGE_ADMIN_TOKEN: token }, /admin listening on http:\/\/127\.0\.0\.1:(\d+)/, async (port) => {
      expect((await get(port, "/metrics")).status).toBe(401)
      expect((await get(port, "/metrics", `Bearer ${token}`)).status).toBe(200)
    })
  })

  it("warns at start-up when the admin listener is not loopback (192.0.2.1, which then fails to bind)", async () => {
    const cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", "--admin", "192.0.2.1:0"])
    try {
      const [line] = await cli.waitForLog(/.*admin listener on 192\.0\.2\.1 is not loopback.*/, 30_000)
      expect(line).toMatch(/WARN/)
      expect(line).toContain("has no token")
    } finally {
      await cli.kill()
    }
  })

  it("refuses a token file whose token is too short, without printing it (exit 2)", async () => {
    const file = path.join(dir, "short")
    fs.writeFileSync(file, "hunter2\n")
    const cli = await spawnCli("bun", ["check-config", "--admin", "127.0.0.1:9100", "--admin-token-file", file])
    try {
      expect((await cli.exited).code).toBe(2)
      expect(cli.output()).toContain("Invalid config: adminTokenFile: expected a file holding a token of at least 16 characters")
      expect(cli.output()).not.toContain("hunter2")
    } finally {
      await cli.kill()
    }
  })

  it("says (bearer token) in check-config's summary and never the token", async () => {
    const cli = await spawnCli("bun", ["check-config", "--admin", "127.0.0.1:9100"], { env: { SMTP_BRIDGE_ADMIN_TOKEN: token } })
    try {
      expect((await cli.exited).code).toBe(0)
      expect(cli.output()).toContain("admin 127.0.0.1:9100 (bearer token)")
      expect(cli.output()).not.toContain(token)
    } finally {
      await cli.kill()
    }
  })
})
