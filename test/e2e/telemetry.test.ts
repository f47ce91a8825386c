// OpenTelemetry tracing against a real OTLP/HTTP collector stand-in on 127.0.0.1: a bridge with
// `telemetry` exports one `smtp.session` span per connection, an `smtp.transaction` span under it
// and the plugin hooks' spans under those, flushed on shutdown; a bridge without it makes no span,
// sends nothing, and never even imports OpenTelemetry.
//
//   C: EHLO / AUTH PLAIN (alice) / MAIL / RCPT / DATA ... . / QUIT
//   S: 250 2.0.0 Ok: queued as <id>
//   (shutdown)  -> POST /v1/traces  smtp.session { smtp.auth.user: alice, smtp.outcome: quit, ... }
//                                     smtp.transaction { smtp.transaction.id: <id>, outcome: accepted }
//                                       plugin.received.data
//
//   $ smtp-bridge serve --otlp-endpoint http://127.0.0.1:PORT ...   -> "telemetry http://127.0.0.1:PORT/v1/traces"
//   $ smtp-bridge check-config --otlp-endpoint ftp://collector      -> exit 2, "Invalid config: telemetry.otlpEndpoint: ..."
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { definePlugin, Verdict } from "../../src/index.ts"
import * as Tracing from "../../src/util/Tracing.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { projectRoot, type Runtime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const password = "Tr4ce-Me-Not!"
const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const plainToken = b64(`\0alice\0${password}`)

// ---------------------------------------------------------------------------------------------
// A collector that keeps what it is sent

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

interface Span {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly kind: number
  readonly attributes: Record<string, unknown>
  readonly resource: Record<string, unknown>
}

interface Collector {
  readonly url: string
  readonly requests: Array<Received>
  readonly spans: () => ReadonlyArray<Span>
  readonly close: () => Promise<void>
}

interface AnyValue {
  readonly stringValue?: string
  readonly boolValue?: boolean
  readonly intValue?: number | string
  readonly doubleValue?: number
}
type KeyValues = ReadonlyArray<{ readonly key: string; readonly value: AnyValue }> | undefined

const valueOf = (v: AnyValue): unknown =>
  v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue)

const record = (attributes: KeyValues): Record<string, unknown> =>
  Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, valueOf(value)]))

interface ExportRequest {
  readonly resourceSpans?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: KeyValues }
    readonly scopeSpans?: ReadonlyArray<{
      readonly spans?: ReadonlyArray<{
        readonly name: string
        readonly traceId: string
        readonly spanId: string
        readonly parentSpanId?: string
        readonly kind: number
        readonly attributes?: KeyValues
      }>
    }>
  }>
}

const spansOf = (body: string): Array<Span> =>
  ((JSON.parse(body) as ExportRequest).resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        name: s.name,
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId === undefined || s.parentSpanId === "" ? undefined : s.parentSpanId,
        kind: s.kind,
        attributes: record(s.attributes),
        resource: record(rs.resource?.attributes)
      }))
    )
  )

/** A collector on 127.0.0.1 that answers every request with `status`. */
const startCollector = (status = 200): Promise<Collector> =>
  new Promise((resolve, reject) => {
    const requests: Array<Received> = []
    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") })
        res.writeHead(status, { "content-type": "application/json" }).end(status === 200 ? "{}" : "{\"message\":\"refused\"}")
      })
    })
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resolve({
        url: `http://127.0.0.1:${port}`,
        requests,
        spans: () => requests.filter((r) => r.url === "/v1/traces").flatMap((r) => spansOf(r.body)),
        close: () => new Promise((done) => server.close(() => done()))
      })
    })
  })

const usersFile = async (): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-telemetry-"))
  const file = path.join(dir, "users.htpasswd")
  fs.writeFileSync(file, `alice:${await hashPassword(password, 4)}\n`)
  return file
}

/** C: EHLO, AUTH PLAIN, one message, QUIT; gives the transaction id of the 250. */
const sendOne = async (port: number, auth: boolean): Promise<string> => {
  const c: Client = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  if (auth) expect(await c.command(`AUTH PLAIN ${plainToken}`)).toMatch(/^235 2\.7\.0 /)
  const from = auth ? "alice@example.com" : "someone@example.org"
  expect(await c.command(`MAIL FROM:<${from}>`)).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  const queued = await c.command(`From: <${from}>\r\nTo: <bob@example.net>\r\nSubject: traced\r\n\r\nHello.\r\n.`)
  const id = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(queued)?.[1]
  expect(id, queued).toBeDefined()
  expect(await c.command("QUIT")).toMatch(/^221 /)
  await c.closed()
  return id!
}

const one = (spans: ReadonlyArray<Span>, name: string): Span => {
  const found = spans.filter((s) => s.name === name)
  expect(found.map((s) => s.name), `spans: ${spans.map((s) => s.name).join(", ")}`).toEqual([name])
  return found[0]!
}

// ---------------------------------------------------------------------------------------------

describe("with telemetry configured", () => {
  let collector: Collector
  let bridge: TestBridge
  let transactionId: string

  beforeAll(async () => {
    collector = await startCollector()
    bridge = await startBridge({
      users: await usersFile(),
      allowInsecureAuth: true,
      senders: { alice: ["alice@example.com"] },
      telemetry: { otlpEndpoint: collector.url, serviceName: "bridge-under-test", headers: { "x-collector-key": "key-123" } }
    })
    transactionId = await sendOne(bridge.port, true)
    // Spans leave in batches: closing the bridge must flush the last one before it returns.
    await bridge.stop()
  })
  afterAll(() => collector.close())

  it("POSTs OTLP/HTTP JSON to the endpoint's /v1/traces with the configured headers", () => {
    expect(collector.requests.length).toBeGreaterThan(0)
    for (const request of collector.requests) {
      expect(request.method).toBe("POST")
      expect(request.url).toBe("/v1/traces")
      expect(request.headers["content-type"]).toMatch(/^application\/json/)
      expect(request.headers["x-collector-key"]).toBe("key-123")
    }
  })

  it("exports one smtp.session span (kind server) naming the client, the user, TLS and the outcome", () => {
    const spans = collector.spans()
    const session = one(spans, "smtp.session")
    expect(session.kind).toBe(2)
    expect(session.parentSpanId).toBeUndefined()
    expect(session.resource["service.name"]).toBe("bridge-under-test")
    expect(session.attributes).toMatchObject({
      "client.address": "127.0.0.1",
      "network.local.address": "127.0.0.1",
      "network.local.port": bridge.port,
      "smtp.helo": "client.test",
      "smtp.auth.user": "alice",
      "smtp.auth.mechanism": "PLAIN",
      "smtp.tls.mode": "none",
      "smtp.outcome": "quit",
      "smtp.commands": 6,
      "smtp.transactions": 1
    })
    expect(session.attributes["smtp.session.id"]).toMatch(/^[0-9A-F]{16}$/)
    expect(typeof session.attributes["client.port"]).toBe("number")
  })

  it("nests the transaction under the session and the received plugin's data hook under the transaction", () => {
    const spans = collector.spans()
    const session = one(spans, "smtp.session")
    const transaction = one(spans, "smtp.transaction")
    const received = one(spans, "plugin.received.data")
    expect(transaction.parentSpanId).toBe(session.spanId)
    expect(transaction.attributes).toMatchObject({
      "smtp.transaction.id": transactionId,
      "smtp.transaction.outcome": "accepted",
      "smtp.reply.code": 250,
      "smtp.recipients": 1
    })
    expect(received.parentSpanId).toBe(transaction.spanId)
    // Hooks before MAIL belong to the session itself.
    expect(one(spans, "plugin.auth-htpasswd.auth").parentSpanId).toBe(session.spanId)
    expect(one(spans, "plugin.relay-policy.connect").parentSpanId).toBe(session.spanId)
    expect(one(spans, "plugin.sender-identity.mailFrom").parentSpanId).toBe(transaction.spanId)
    for (const span of spans) expect(span.traceId, span.name).toBe(session.traceId)
  })

  it("never exports the AUTH password, in any form, nor the collector's key", () => {
    expect(collector.spans().length).toBeGreaterThan(0)
    for (const request of collector.requests) {
      for (const secret of [password, plainToken, b64(password), "key-123"]) expect(request.body).not.toContain(secret)
    }
  })
})

describe("transaction outcomes", () => {
  it("ends each smtp.transaction span with how it ended: reset, accepted over BDAT, refused, rejected, abandoned", async () => {
    const collector = await startCollector()
    try {
      const bridge = await startBridge({
        trust: ["127.0.0.0/8"],
        limits: { maxMessageSize: 1000 },
        telemetry: { otlpEndpoint: collector.url }
      })
      try {
        const c = await connect(bridge.port)
        await c.read()
        await c.command("EHLO client.test")
        // C: MAIL / RCPT / RSET                          -> reset
        expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
        expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
        expect(await c.command("RSET")).toBe("250 2.0.0 Ok")
        // C: MAIL / RCPT x2 / BDAT / BDAT 0 LAST         -> accepted, 250, 2 recipients
        await c.command("MAIL FROM:<a@example.org>")
        await c.command("RCPT TO:<b@example.net>")
        await c.command("RCPT TO:<c@example.net>")
        const body = "Subject: chunked\r\n\r\nHello.\r\n"
        c.send(`BDAT ${body.length}\r\n${body}`)
        expect(await c.read()).toBe(`250 2.0.0 ${body.length} octets received`)
        expect(await c.command("BDAT 0 LAST")).toMatch(/^250 2\.0\.0 Ok: queued as /)
        // C: MAIL SIZE=2000                              -> refused, 552
        expect(await c.command("MAIL FROM:<a@example.org> SIZE=2000")).toMatch(/^552 5\.3\.4 /)
        // C: MAIL / RCPT / BDAT 2000 LAST                -> rejected, 552
        await c.command("MAIL FROM:<a@example.org>")
        await c.command("RCPT TO:<b@example.net>")
        c.send(`BDAT 2000 LAST\r\n${"x".repeat(2000)}`)
        expect(await c.read()).toMatch(/^552 5\.3\.4 /)
        // C: MAIL / RCPT / DATA / part of it, QUIT never comes: the client leaves -> abandoned
        await c.command("MAIL FROM:<a@example.org>")
        await c.command("RCPT TO:<b@example.net>")
        expect(await c.command("DATA")).toMatch(/^354 /)
        c.send("Subject: never ends\r\n")
        c.close()
        await new Promise((resolve) => setTimeout(resolve, 200))
      } finally {
        await bridge.stop()
      }
      const outcomes = collector.spans().filter((s) => s.name === "smtp.transaction").map((s) => [
        s.attributes["smtp.transaction.outcome"],
        s.attributes["smtp.reply.code"],
        s.attributes["smtp.recipients"]
      ])
      expect(outcomes).toEqual(expect.arrayContaining([
        ["reset", undefined, 1],
        ["accepted", 250, 2],
        ["refused", 552, undefined],
        ["rejected", 552, 1],
        ["abandoned", undefined, 1]
      ]))
      expect(outcomes).toHaveLength(5)
      expect(one(collector.spans(), "smtp.session").attributes["smtp.transactions"]).toBe(4)
    } finally {
      await collector.close()
    }
  })
})

describe("without telemetry", () => {
  let collector: Collector
  const saved = { ...process.env }

  beforeAll(async () => {
    collector = await startCollector()
  })
  afterEach(() => {
    for (const key of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"]) {
      if (saved[key] === undefined) delete process.env[key]
      else process.env[key] = saved[key]
    }
  })
  afterAll(() => collector.close())

  it("makes no span and sends nothing, even with the OTEL_* variables pointing at a collector", async () => {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.url
    process.env.OTEL_TRACES_EXPORTER = "otlp"
    const seen: Array<{ collected: boolean; span: boolean }> = []
    const probe = definePlugin({
      name: "probe",
      data: () =>
        Effect.gen(function*() {
          const tracer = yield* Effect.tracer
          const span = yield* Effect.option(Effect.currentSpan)
          seen.push({ collected: Tracing.collected(tracer), span: Option.isSome(span) })
          return Verdict.Continue
        })
    })
    const bridge = await startBridge({ trust: ["127.0.0.1/32"], plugins: [probe] })
    try {
      await sendOne(bridge.port, false)
    } finally {
      await bridge.stop()
    }
    expect(seen).toEqual([{ collected: false, span: false }])
    expect(collector.requests).toEqual([])
  })

  it("imports no OpenTelemetry module statically: only a configured bridge loads Otlp.ts, by a dynamic import", () => {
    // src/cli.ts turns Node's compile cache on, then imports commands/Start.ts: the command's graph starts there.
    expect(fs.readFileSync(path.join(projectRoot, "src", "cli.ts"), "utf8")).toContain('import("./commands/Start.ts")')
    const staticGraph = reachable(path.join(projectRoot, "src", "commands", "Start.ts"))
    const otel = (specifier: string) => /^@opentelemetry\/|^@effect\/opentelemetry\b/.test(specifier)
    expect(staticGraph.files.has(path.join(projectRoot, "src", "Bridge.ts"))).toBe(true)
    expect(staticGraph.files.has(path.join(projectRoot, "src", "observability", "Telemetry.ts"))).toBe(true)
    expect(staticGraph.files.has(path.join(projectRoot, "src", "observability", "Otlp.ts"))).toBe(false)
    expect([...staticGraph.packages].filter(otel)).toEqual([])
    // The same walk does find OpenTelemetry from the module that loads it.
    expect([...reachable(path.join(projectRoot, "src", "observability", "Otlp.ts")).packages].filter(otel).length).toBeGreaterThan(0)
  })
})

/** The files and packages that `entry` imports statically, transitively (`import type` and `import()` excluded). */
const reachable = (entry: string): { files: Set<string>; packages: Set<string> } => {
  const files = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (files.has(file)) return
    files.add(file)
    const source = fs.readFileSync(file, "utf8")
    const pattern = /^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm
    for (const [, specifier] of source.matchAll(pattern)) {
      if (specifier!.startsWith(".")) {
        const target = path.resolve(path.dirname(file), specifier!)
        if (target.endsWith(".ts")) visit(target)
      } else packages.add(specifier!)
    }
  }
  visit(entry)
  return { files, packages }
}

describe("the CLI", () => {
  const runtime: Runtime = process.versions.bun !== undefined ? "bun" : "deno"

  it("serve --otlp-endpoint says where spans go and flushes them on SIGTERM", async () => {
    const collector = await startCollector()
    const maildir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-telemetry-cli-"))
    const cli = await spawnCli(runtime, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.1/32", "--maildir", maildir, "--otlp-endpoint", collector.url
    ])
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/)
      expect(cli.output()).toContain(`telemetry ${collector.url}/v1/traces`)
      await sendOne(Number(port), false)
      const exit = await cli.kill()
      expect(exit.code, cli.output()).toBe(0)
      const session = one(collector.spans(), "smtp.session")
      expect(session.attributes["smtp.outcome"]).toBe("quit")
      expect(session.resource["service.name"]).toBe("smtp-bridge")
      expect(one(collector.spans(), "plugin.received.data").traceId).toBe(session.traceId)
    } finally {
      await cli.kill()
      await collector.close()
    }
  })

  it("a collector that refuses spans costs no mail: 250, a warning, a clean exit", async () => {
    const collector = await startCollector(400)
    const maildir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-telemetry-cli-"))
    const cli = await spawnCli(runtime, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.1/32", "--maildir", maildir, "--otlp-endpoint", collector.url
    ])
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/)
      await sendOne(Number(port), false)
      expect(fs.readdirSync(path.join(maildir, "new"))).toHaveLength(1)
      const exit = await cli.kill()
      expect(exit.code, cli.output()).toBe(0)
      expect(collector.requests.length).toBeGreaterThan(0)
      expect(cli.output()).toContain(`telemetry: cannot export spans to ${collector.url}/v1/traces`)
    } finally {
      await cli.kill()
      await collector.close()
    }
  })

  it("check-config names telemetry in its summary, or exits 2 naming telemetry.otlpEndpoint", async () => {
    const run = async (args: ReadonlyArray<string>) => {
      const cli = await spawnCli(runtime, args)
      try {
        const exit = await cli.exited
        return { code: exit.code, stdout: cli.stdout(), stderr: cli.stderr() }
      } finally {
        await cli.kill()
      }
    }
    const off = await run(["check-config"])
    expect(off.code, off.stderr).toBe(0)
    expect(off.stdout).toMatch(/; telemetry off(;|\n|$)/)
    const on = await run(["check-config", "--otlp-endpoint", "https://collector.example:4318"])
    expect(on.code, on.stderr).toBe(0)
    expect(on.stdout).toMatch(/; telemetry https:\/\/collector\.example:4318\/v1\/traces(;|\n|$)/)
    const bad = await run(["check-config", "--otlp-endpoint", "ftp://collector.example"])
    expect(bad.code).toBe(2)
    expect(bad.stderr.trim()).toBe(
      "Invalid config: telemetry.otlpEndpoint: expected an http:// or https:// URL of an OTLP/HTTP collector without credentials, like http://127.0.0.1:4318, got \"ftp://collector.example\" (flags)"
    )
    expect(bad.stdout).toBe("")
  })
})
