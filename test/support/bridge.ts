/**
 * Starts a real bridge in-process on loopback port 0 for end-to-end tests, with its own
 * temporary Maildir, and reads back what was delivered.
 */
import { Effect, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Bridge from "../../src/Bridge.ts"
import type { ConfigInput } from "../../src/config/Input.ts"
import * as Log from "../../src/observability/Log.ts"
import * as Resolve from "../../src/config/Resolve.ts"

export interface TestBridge {
  /** Port of the first plain listener. */
  readonly port: number
  /** Port of the first implicit-TLS listener, if any. */
  readonly tlsPort: number | undefined
  readonly maildir: string
  readonly running: Bridge.Running
  /** The files in maildir/new, oldest first, as raw bytes. */
  readonly delivered: () => ReadonlyArray<Buffer>
  /** Every line logged at INFO and above so far, as the JSON log format has it (level, message, fields). */
  readonly logs: () => ReadonlyArray<Record<string, unknown>>
  /** Closes the server scope: graceful drain, as on SIGTERM. */
  readonly stop: () => Promise<void>
}

/** The files in `maildir`/new, oldest first (their names sort by time), as raw bytes. */
export const maildirFiles = (maildir: string): ReadonlyArray<Buffer> => {
  const dir = path.join(maildir, "new")
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f)))
}

/** The same as text. */
export const maildirMessages = (maildir: string): ReadonlyArray<string> => maildirFiles(maildir).map((b) => b.toString("utf8"))

export const startBridge = async (input: ConfigInput = {}): Promise<TestBridge> => {
  const maildir = input.maildir ?? fs.mkdtempSync(path.join(os.tmpdir(), "sb-maildir-"))
  const config = await Effect.runPromise(Resolve.resolve({
    listen: ["127.0.0.1:0"],
    hostname: "bridge.test",
    ...input,
    maildir
  }, "test"))
  const scope = await Effect.runPromise(Scope.make())
  const shown = process.env.SMTP_BRIDGE_TEST_LOG === "1" ? LogLevel.Debug : LogLevel.Warning
  // Lines from INFO up are kept for the tests to read; the console gets WARN and up unless asked.
  const lines: Array<Record<string, unknown>> = []
  const loggers = Layer.merge(
    Logger.add(Logger.make((options) => void lines.push(Log.record(options)))),
    Logger.replace(Logger.defaultLogger, Logger.filterLogLevel(Logger.defaultLogger, LogLevel.greaterThanEqual(shown)))
  )
  const running = await Effect.runPromise(
    Bridge.start(config).pipe(Scope.extend(scope), Logger.withMinimumLogLevel(LogLevel.lessThan(shown, LogLevel.Info) ? shown : LogLevel.Info), Effect.provide(loggers))
  )
  const plain = running.addresses.find((a) => a.mode === "plain")
  const implicit = running.addresses.find((a) => a.mode === "implicit")
  return {
    port: plain?.port ?? 0,
    tlsPort: implicit?.port,
    maildir,
    running,
    delivered: () => maildirFiles(maildir),
    logs: () => [...lines],
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** The message as the client sent it: the delivered file without the headers the bridge added on top. */
export const stripTrace = (file: Buffer): string =>
  file.toString("utf8").replace(/^(?:Return-Path:.*\r\n|Delivered-To:.*\r\n|Received:.*\r\n(?:[ \t].*\r\n)*)+/, "")
