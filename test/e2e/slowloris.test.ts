// Slow and stalled clients (DESIGN.md section 3): no client holds a connection slot for longer than
// the deadlines say, however it trickles its bytes, and no network takes every slot.
//
//   S: 220 bridge.test ESMTP smtp-bridge
//   C: EHLO client.test
//   S: 250-...
//   C: N  (150 ms)  O  (150 ms)  O  (150 ms)  P ...     one byte at a time, never a line end
//   S: 421 4.4.2 Timeout, closing connection            commandTimeout after the first byte
//   (the server closes)
//
//   C: EHLO x / EHLO x / EHLO x ... (never reads a reply)
//   (idleTimeout later the bridge cuts the connection off; its memory stays where it was)
//
//   C: (the 9th connection from 127.0.5.0/24, maxConnectionsPerNetwork: 8)
//   S: 421 4.7.0 Too many connections from your network, try again later
//   C: (a connection from 127.0.6.1)
//   S: 220 bridge.test ESMTP smtp-bridge
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge } from "../support/bridge.ts"
import * as Memory from "../../src/runtime/Memory.ts"
import { run } from "../support/exec.ts"
import { type Runtime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

/** Sends `text` one byte every `everyMs` until all of it is sent; the returned function stops it early. */
const dribble = (c: Client, text: string, everyMs: number): () => void => {
  let i = 0
  const timer = setInterval(() => {
    if (i >= text.length) return clearInterval(timer)
    c.send(text[i++]!)
  }, everyMs)
  return () => clearInterval(timer)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const eventually = async (check: () => boolean, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (!check() && Date.now() < deadline) await sleep(20)
  return check()
}

// Long enough to go on for 10 s at 150 ms a byte: far past every deadline below.
const endlessLine = `NOOP ${"x".repeat(60)}\r\n`

describe("deadlines from the first byte", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      // Waits between bytes (idle, DATA) are long: only the deadlines can end these sessions.
      limits: { greetingTimeout: 1500, idleTimeout: 10_000, commandTimeout: 1000, dataTimeout: 10_000, transferTimeout: 1500 }
    })
  })
  afterAll(() => bridge.stop())

  it("says 421 4.4.2 and closes a command line dribbled past commandTimeout from its first byte", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.1" })
    let stopDribble = () => {}
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      const start = performance.now()
      stopDribble = dribble(c, endlessLine, 150)
      expect(await c.read(8_000)).toBe("421 4.4.2 Timeout, closing connection")
      const elapsed = performance.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(900)
      // Well before idleTimeout (10 s), which the trickle would otherwise keep resetting; slack for a loaded machine.
      expect(elapsed).toBeLessThan(7_000)
      await c.closed(3_000)
    } finally {
      stopDribble()
      c.close()
    }
  })

  it("says 421 4.4.2 at the greeting deadline to a first command dribbled from late in the wait", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.2" })
    let stopDribble = () => {}
    try {
      expect(await c.read()).toMatch(/^220 /)
      const greeted = performance.now()
      await sleep(800)
      // From its first byte the line would have until 1.8 s; the greeting's deadline (1.5 s) comes first.
      stopDribble = dribble(c, endlessLine, 150)
      expect(await c.read(8_000)).toBe("421 4.4.2 Timeout, closing connection")
      const elapsed = performance.now() - greeted
      expect(elapsed).toBeGreaterThanOrEqual(1_400)
      // Well before idleTimeout (10 s), which the trickle would otherwise keep resetting; slack for a loaded machine.
      expect(elapsed).toBeLessThan(7_000)
      await c.closed(3_000)
    } finally {
      stopDribble()
      c.close()
    }
  })

  it("keeps a session whose every line arrives within commandTimeout, however long the session", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.3" })
    try {
      expect(await c.read()).toMatch(/^220 /)
      // 2.4 s of lines, each split in two with a pause: the deadline is per line, not per session.
      for (let i = 0; i < 8; i++) {
        c.send("NO")
        await sleep(150)
        c.send("OP\r\n")
        expect(await c.read()).toBe("250 2.0.0 Ok")
        await sleep(150)
      }
      expect(await c.command("QUIT")).toMatch(/^221 /)
    } finally {
      c.close()
    }
  })

  it("says 421 4.4.2 to a message dribbled past transferTimeout after the 354, and delivers nothing", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.4" })
    let stopDribble = () => {}
    try {
      await c.read()
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      const start = performance.now()
      stopDribble = dribble(c, `Subject: slow\r\n\r\n${"x".repeat(100)}\r\n.\r\n`, 100)
      expect(await c.read(8_000)).toBe("421 4.4.2 Timeout, closing connection")
      const elapsed = performance.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(1_400)
      // Well before idleTimeout (10 s), which the trickle would otherwise keep resetting; slack for a loaded machine.
      expect(elapsed).toBeLessThan(7_000)
      await c.closed(3_000)
      expect(bridge.delivered()).toHaveLength(0)
    } finally {
      stopDribble()
      c.close()
    }
  })

  it("says 421 4.4.2 to the BDAT that comes after transferTimeout, however small each chunk", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.5" })
    try {
      await c.read()
      await c.command("EHLO client.test")
      await c.command("MAIL FROM:<alice@example.org>")
      await c.command("RCPT TO:<bob@example.net>")
      const start = performance.now()
      let last = ""
      // Each one-byte chunk comes with its command, so no read ever waits: only the deadline ends it.
      while (performance.now() - start < 7_000) {
        c.send("BDAT 1\r\nx")
        last = await c.read(2_000).catch((e: Error) => e.message)
        if (last !== "250 2.0.0 1 octets received") break
        await sleep(200)
      }
      expect(last).toBe("421 4.4.2 Timeout, closing connection")
      const elapsed = performance.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(1_400)
      // Well before idleTimeout (10 s), which the trickle would otherwise keep resetting; slack for a loaded machine.
      expect(elapsed).toBeLessThan(7_000)
      await c.closed(3_000)
      expect(bridge.delivered()).toHaveLength(0)
    } finally {
      c.close()
    }
  })

  it("says 421 4.4.2 to a refused BDAT chunk (no MAIL) dribbled past transferTimeout", async () => {
    const c = await connect(bridge.port, { localAddress: "127.0.4.6" })
    let stopDribble = () => {}
    try {
      await c.read()
      await c.command("EHLO client.test")
      // Without a transaction the chunk's bytes are read only to be thrown away: still within the deadline.
      c.send("BDAT 1000 LAST\r\n")
      const start = performance.now()
      stopDribble = dribble(c, "x".repeat(1000), 100)
      expect(await c.read(8_000)).toBe("421 4.4.2 Timeout, closing connection")
      const elapsed = performance.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(1_400)
      // Well before dataTimeout (10 s), which the trickle would otherwise keep resetting; slack for a loaded machine.
      expect(elapsed).toBeLessThan(7_000)
      await c.closed(3_000)
    } finally {
      stopDribble()
      c.close()
    }
  })
})

/**
 * A client that never reads (Python, so that none of its buffering is in this process, whose memory
 * is the bridge's): a receive buffer of 4 KiB, then EHLO lines as fast as the bridge takes them,
 * for `seconds` at most or until the connection is reset. Prints `{ sent, state, seconds }`.
 */
const nonReader = `
import json, socket, sys, time
port, source, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((source, 0))
s.connect(("127.0.0.1", port))
s.settimeout(0.1)
payload = b"EHLO x\\r\\n" * 8192
sent, state, start = 0, "open", time.monotonic()
while time.monotonic() - start < limit:
    try:
        sent += s.send(payload)
    except socket.timeout:
        continue
    except OSError:
        state = "reset"
        break
print(json.dumps({"sent": sent, "state": state, "seconds": time.monotonic() - start}))
`

interface NonReaderResult {
  readonly sent: number
  readonly state: "open" | "reset"
  readonly seconds: number
}

const runNonReader = async (port: number, source: string, seconds: number): Promise<NonReaderResult> => {
  const r = await run("python3", ["-c", nonReader, String(port), source, String(seconds)], { timeoutMs: (seconds + 10) * 1000 })
  if (r.code !== 0) throw new Error(`the non-reading client failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as NonReaderResult
}

/** Live memory after a full collection: the JS heap and the buffers outside it. */
const liveBytes = (): number => {
  Memory.collectNow()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

describe("a client that does not read its replies", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { idleTimeout: 1500, maxConnections: 20 } })
  })
  afterAll(() => bridge.stop())

  it("is cut off after idleTimeout while it still floods, and what it made the bridge hold is freed", async () => {
    // Warm up: the first session loads what every session uses.
    const warm = await connect(bridge.port)
    await warm.read()
    expect(await warm.command("QUIT")).toMatch(/^221 /)
    await sleep(200)
    const before = liveBytes()
    let most = 0
    const sampler = setInterval(() => {
      most = Math.max(most, bridge.running.connections())
    }, 20)
    try {
      // Each floods for up to 25 s; the bridge answers EHLO after EHLO until the kernel's buffers
      // are full (about 2.7 MB of replies each: seconds of CPU), then its write waits, and 1.5 s
      // later it gives up on the client.
      const clients = Promise.all(Array.from({ length: 4 }, (_, i) => runNonReader(bridge.port, `127.0.7.${i + 1}`, 25)))
      const cutOff = await eventually(() => most > 0 && bridge.running.connections() === 0, 20_000)
      // Measured while the clients would still be flooding, had they not been cut off.
      const grown = liveBytes() - before
      const results = await clients
      expect(most).toBeGreaterThan(0)
      // Before the fix: about 7 MB held per stuck session, for as long as its client stayed.
      expect(grown).toBeLessThan(8 * 1024 * 1024)
      expect(cutOff).toBe(true)
      for (const r of results) {
        expect(r.state).toBe("reset")
        expect(r.seconds).toBeLessThan(21)
      }
    } finally {
      clearInterval(sampler)
    }
  }, 60_000)
})

const networkRefusal = "421 4.7.0 Too many connections from your network, try again later"

describe("connections per network", () => {
  /** Connects from `from` and reads the server's first reply (220 or 421). */
  const open = async (port: number, from: string, clients: Array<Client>): Promise<string> => {
    const c = await connect(port, { localAddress: from, timeoutMs: 5_000 })
    clients.push(c)
    return c.read()
  }

  it("refuses a /24 past maxConnectionsPerNetwork with 421 4.7.0, so that a client from another /24 still gets 220", async () => {
    const bridge = await startBridge({ limits: { maxConnections: 20, maxConnectionsPerIp: 5, maxConnectionsPerNetwork: 8 } })
    const clients: Array<Client> = []
    try {
      // Six addresses of 127.0.5.0/24, four connections each: 24 attempts for 20 slots, every
      // address under its own limit of 5.
      const lines: Array<string> = []
      for (let a = 1; a <= 6; a++) {
        for (let i = 0; i < 4; i++) lines.push(await open(bridge.port, `127.0.5.${a}`, clients))
      }
      expect(lines.filter((l) => /^220 /.test(l))).toHaveLength(8)
      expect(lines.filter((l) => l === networkRefusal)).toHaveLength(16)
      expect(bridge.running.connections()).toBeLessThanOrEqual(8)
      expect(await open(bridge.port, "127.0.6.1", clients)).toMatch(/^220 /)

      // A slot given back is the network's again.
      clients[0]!.close()
      expect(await eventually(() => bridge.running.connections() === 8, 3_000)).toBe(true)
      expect(await open(bridge.port, "127.0.5.6", clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.5.6", clients)).toBe(networkRefusal)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
  })

  it("counts a network as wide as ipv4NetworkPrefix says: with /16, 127.0.5.1 and 127.0.6.1 share one", async () => {
    const bridge = await startBridge({ limits: { maxConnectionsPerNetwork: 2, ipv4NetworkPrefix: 16 } })
    const clients: Array<Client> = []
    try {
      expect(await open(bridge.port, "127.0.5.1", clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.6.1", clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.7.1", clients)).toBe(networkRefusal)
      expect(await open(bridge.port, "127.1.0.1", clients)).toMatch(/^220 /)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
  })

  it("counts IPv6 clients by their /64: the third connection from ::1 gets 421 4.7.0 with maxConnectionsPerNetwork 2", async () => {
    const bridge = await startBridge({ listen: ["[::1]:0"], limits: { maxConnectionsPerNetwork: 2 } })
    const clients: Array<Client> = []
    const open6 = async () => {
      const c = await connect(bridge.port, { host: "::1", timeoutMs: 5_000 })
      clients.push(c)
      return c.read()
    }
    try {
      expect(await open6()).toMatch(/^220 /)
      expect(await open6()).toMatch(/^220 /)
      expect(await open6()).toBe(networkRefusal)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
  })

  it("does not hold trusted networks to maxConnectionsPerNetwork (as for the per-address limit)", async () => {
    const bridge = await startBridge({ trust: ["127.0.5.0/24"], limits: { maxConnectionsPerNetwork: 2 } })
    const clients: Array<Client> = []
    try {
      for (let a = 1; a <= 4; a++) expect(await open(bridge.port, `127.0.5.${a}`, clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.6.1", clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.6.2", clients)).toMatch(/^220 /)
      expect(await open(bridge.port, "127.0.6.3", clients)).toBe(networkRefusal)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
  })
})

/** The runtime this test runs under: the CLI is started under the same one. */
const runtime: Runtime = "Bun" in globalThis ? "bun" : "deno"

describe(`the per-network flags of the real CLI (${runtime})`, () => {
  const checkConfig = async (args: ReadonlyArray<string>) => {
    const cli = await spawnCli(runtime, ["check-config", "--listen", "127.0.0.1:0", ...args])
    try {
      const exit = await Promise.race([cli.exited, sleep(30_000).then(() => undefined)])
      return { code: exit?.code, stderr: cli.stderr().trim() }
    } finally {
      await cli.kill()
    }
  }

  it("exits 2 with one line naming limits.maxConnectionsPerNetwork for --max-connections-per-network 0", async () => {
    const r = await checkConfig(["--max-connections-per-network", "0"])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe("Invalid config: limits.maxConnectionsPerNetwork: expected a positive integer, got 0 (flags)")
  })

  it("exits 2 with one line naming limits.ipv4NetworkPrefix for --ipv4-network-prefix 33, and ipv6NetworkPrefix for --ipv6-network-prefix x", async () => {
    expect((await checkConfig(["--ipv4-network-prefix", "33"])).stderr).toBe(
      "Invalid config: limits.ipv4NetworkPrefix: expected a prefix length from 0 to 32, got 33 (flags)"
    )
    expect((await checkConfig(["--ipv6-network-prefix", "x"])).stderr).toBe(
      "Invalid config: limits.ipv6NetworkPrefix: expected a prefix length from 0 to 128, got NaN (flags)"
    )
  })

  it("serve --max-connections-per-network 2: the third connection from 127.0.5.0/24 gets 421 4.7.0, one from 127.0.6.1 gets 220", async () => {
    const cli = await spawnCli(runtime, ["serve", "--listen", "127.0.0.1:0", "--max-connections-per-network", "2"])
    const clients: Array<Client> = []
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      const first = async (from: string) => {
        const c = await connect(Number(port), { localAddress: from, timeoutMs: 5_000 })
        clients.push(c)
        return c.read()
      }
      expect(await first("127.0.5.1")).toMatch(/^220 /)
      expect(await first("127.0.5.2")).toMatch(/^220 /)
      expect(await first("127.0.5.3")).toBe(networkRefusal)
      expect(await first("127.0.6.1")).toMatch(/^220 /)
    } finally {
      for (const c of clients) c.close()
      await cli.kill()
    }
  })
})
