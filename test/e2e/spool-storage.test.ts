/**
 * A spool on a full disk (Postfix's queue_minfree): MAIL FROM is refused with 452 4.3.1 when the
 * spool's file system has less free than the declared SIZE plus the configured floor, before the
 * client sends any data, instead of a 451 after the whole message was read. The floor stands in
 * for a full disk: a floor larger than the free space is a disk that is full for the bridge.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { spawnCli } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"

const freeBytes = (dir: string): number => {
  const s = fs.statfsSync(dir)
  return Number(s.bavail) * Number(s.bsize)
}

const mailFrom = async (port: number, line: string): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    return await c.command(line)
  } finally {
    c.close()
  }
}

describe("spool free space at MAIL FROM", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-free-"))
  let full: TestBridge
  let roomy: TestBridge

  beforeAll(async () => {
    const free = freeBytes(root)
    // A floor past the free space: the disk is full as far as the bridge is concerned.
    full = await startBridge({ trust: ["127.0.0.0/8"], spool: { dir: path.join(root, "full"), minFreeSpace: free * 2 } })
    // A size limit past the free space, so that a SIZE the disk cannot hold is not refused as too big.
    roomy = await startBridge({
      trust: ["127.0.0.0/8"], limits: { maxMessageSize: free * 4 }, spool: { dir: path.join(root, "roomy"), minFreeSpace: 0 }
    })
  })
  afterAll(async () => {
    await full.stop()
    await roomy.stop()
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("refuses MAIL FROM with 452 4.3.1 when less than the floor is free", async () => {
    expect(await mailFrom(full.port, "MAIL FROM:<alice@example.com>")).toBe("452 4.3.1 Insufficient system storage")
  })

  it("refuses MAIL FROM with 452 4.3.1 when the declared SIZE does not fit in the free space", async () => {
    const free = freeBytes(root)
    expect(await mailFrom(roomy.port, `MAIL FROM:<alice@example.com> SIZE=${free * 2}`)).toBe("452 4.3.1 Insufficient system storage")
  })

  it("accepts MAIL FROM (250 2.1.0) when the SIZE and the floor fit", async () => {
    expect(await mailFrom(roomy.port, "MAIL FROM:<alice@example.com> SIZE=1000")).toBe("250 2.1.0 Ok")
  })
})

describe("--spool-min-free", () => {
  it("serve --spool DIR --spool-min-free BYTES: MAIL FROM gets 452 4.3.1 when the floor is past the free space", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-free-cli-"))
    const cli = await spawnCli("bun", [
      "serve", "--listen", "127.0.0.1:0", "--hostname", "free.test", "--trust", "127.0.0.0/8",
      "--spool", path.join(root, "spool"), "--spool-min-free", String(freeBytes(root) * 2)
    ])
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      expect(await mailFrom(Number(port), "MAIL FROM:<alice@example.com>")).toBe("452 4.3.1 Insufficient system storage")
    } finally {
      await cli.kill()
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("check-config names spool.minFreeSpace when it is not a size", async () => {
    const cli = await spawnCli("bun", ["check-config", "--spool", "/tmp/sb-unused-spool", "--spool-min-free", "lots"])
    const exit = await cli.exited
    expect(exit.code).toBe(2)
    expect(cli.stderr()).toMatch(/spool/)
  })
})
