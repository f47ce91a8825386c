import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, Scope, Stream } from "effect"
import * as NodeFs from "node:fs"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { MessageError } from "../../../src/pipeline/Message.ts"
import * as Spool from "../../../src/transport/Spool.ts"
import type { Transport } from "../../../src/transport/Transport.ts"
import { entry, eventually, files, later, ok, recipient, scripted, tempDir } from "./SpoolFixtures.ts"

const slow = { initialDelay: "1 hour", maxDelay: "1 hour", maxAge: "5 days" } as const

describe("Spool queue", () => {
  it.scopedLive("writes the message and its state file, in a 0700 directory, before enqueue returns", () =>
    Effect.gen(function*() {
      const dir = Path.join(yield* tempDir, "spool")
      const relay = scripted("relay", () => later)
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: slow })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      yield* spool.enqueue(queued)
      expect(yield* files(dir)).toEqual([`${queued.id}.eml`, `${queued.id}.json`])
      const stat = yield* Effect.promise(() => Fs.stat(dir))
      if (process.platform !== "win32") expect(stat.mode & 0o777).toBe(0o700)
    }))

  it.scopedLive("refuses a second message with the same id, and leaves nothing behind when the content cannot be read", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => later)
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: slow })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      yield* spool.enqueue(queued)
      const duplicate = yield* Effect.flip(spool.enqueue(queued))
      expect(duplicate).toMatchObject({ _tag: "SpoolError", reason: "Write" })
      expect(duplicate.message).toContain("already queued")

      const broken = {
        ...entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }]),
        content: () => Stream.fail(new MessageError({ reason: "Read", message: "spill file vanished" }))
      }
      const error = yield* Effect.flip(spool.enqueue(broken))
      expect(error).toMatchObject({ _tag: "SpoolError", reason: "Read" })
      // The worker's first attempt of `queued` writes its state through tmp/: let it finish first.
      yield* eventually(Spool.list(dir).pipe(Effect.orDie), (l) => l[0]?.attempts === 1)
      expect(yield* files(dir)).toEqual([`${queued.id}.eml`, `${queued.id}.json`])
      expect(yield* Effect.promise(() => Fs.readdir(Path.join(dir, "tmp")))).toEqual([])
    }))

  it.scopedLive("resumes pending messages after the scope closes mid-delivery and the spool is made again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      let started = 0
      const hanging: Transport = { name: "relay", deliver: () => Effect.zipRight(Effect.sync(() => started++), Effect.never) }
      const first = yield* Scope.make()
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", hanging]]), retry: slow }).pipe(
        Scope.extend(first)
      )
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      yield* spool.enqueue(queued)
      yield* eventually(Effect.sync(() => started), (n) => n === 1)
      yield* Scope.close(first, Exit.void)
      expect(yield* files(dir)).toEqual([`${queued.id}.eml`, `${queued.id}.json`])
      const [listed] = yield* Spool.list(dir)
      expect(listed).toMatchObject({ id: queued.id, attempts: 0, recipients: [{ address: "bob@example.org", state: "pending" }] })

      const relay = scripted("relay")
      yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: slow })
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls.map((c) => c.id)).toEqual([queued.id])
    }))

  it.scopedLive("removes at start-up a message file without a state file and anything left in tmp/", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.promise(async () => {
        await Fs.mkdir(Path.join(dir, "tmp"), { recursive: true })
        await Fs.writeFile(Path.join(dir, "ORPHAN.eml"), "Subject: never committed\r\n\r\n")
        await Fs.writeFile(Path.join(dir, "tmp", "HALF.json.abc123"), "{\"version\":")
      })
      const relay = scripted("relay")
      yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: slow })
      expect(yield* files(dir)).toEqual([])
      expect(yield* Effect.promise(() => Fs.readdir(Path.join(dir, "tmp")))).toEqual([])
      expect(relay.calls).toEqual([])
    }))

  it.scopedLive("moves an unreadable state file and its message to corrupt/ instead of deleting them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.promise(async () => {
        await Fs.writeFile(Path.join(dir, "BAD.eml"), "Subject: x\r\n\r\n")
        await Fs.writeFile(Path.join(dir, "BAD.json"), "{\"version\": 99}")
      })
      const relay = scripted("relay")
      yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: slow })
      yield* eventually(files(dir), (f) => f.length === 0)
      expect((yield* Effect.promise(() => Fs.readdir(Path.join(dir, "corrupt")))).sort()).toEqual(["BAD.eml", "BAD.json"])
      expect(relay.calls).toEqual([])
    }))

  it.scopedLive("lists queued messages with their recipients' state, and flush makes a running worker retry now", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", (_, call) => (call === 1 ? later : ok))
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: slow, pollInterval: "50 millis",
        transports: new Map([["relay", relay.transport]])
      })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      const before = Date.now()
      yield* spool.enqueue(queued)

      const [listed] = yield* eventually(Spool.list(dir).pipe(Effect.orDie), (l) => l[0]?.attempts === 1)
      expect(listed).toMatchObject({
        id: queued.id,
        size: queued.size,
        sender: { address: "alice@example.com" },
        attempts: 1,
        recipients: [{ address: "bob@example.org", transport: "relay", state: "pending", attempts: 1, lastReply: later }]
      })
      expect(listed!.created.getTime()).toBeGreaterThanOrEqual(before - 1000)
      // One hour, less 20% jitter.
      expect(listed!.nextAttempt.getTime() - Date.now()).toBeGreaterThan(40 * 60_000)

      expect(yield* Spool.flush(dir)).toBe(1)
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls).toHaveLength(2)
      expect(yield* Spool.list(dir)).toEqual([])
    }))

  it.scopedLive("remove takes a message out of the queue and says whether it was there", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => later)
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: slow, pollInterval: "50 millis",
        transports: new Map([["relay", relay.transport]])
      })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      yield* spool.enqueue(queued)
      yield* eventually(Effect.sync(() => relay.calls.length), (n) => n === 1)
      expect(yield* Spool.remove(dir, queued.id)).toBe(true)
      // The attempt in flight may still rename its new state file into place: the removal wins.
      yield* eventually(files(dir), (names) => names.length === 0)
      expect(yield* Spool.remove(dir, queued.id)).toBe(false)
      expect(yield* Effect.flip(Spool.remove(dir, "../etc/passwd"))).toMatchObject({ _tag: "SpoolError", reason: "Write" })
      yield* Spool.flush(dir)
      yield* Effect.sleep("150 millis")
      expect(relay.calls).toHaveLength(1)
    }))

  it.scopedLive("queue flush overrides the in-memory hold taken when an attempt could not rewrite its state file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const tmp = Path.join(dir, "tmp")
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => void logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
      // The first delivery is deferred, and while it runs tmp/ becomes a file: the state file
      // cannot be rewritten (as with a full disk; a file rather than chmod, which root ignores).
      const relay = scripted("relay", (_address, call) => {
        if (call === 1) {
          NodeFs.renameSync(tmp, `${tmp}.away`)
          NodeFs.writeFileSync(tmp, "")
        }
        return call === 1 ? later : ok
      })
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: slow, pollInterval: "50 millis",
        transports: new Map([["relay", relay.transport]])
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }])
      yield* spool.enqueue(queued)
      yield* eventually(Effect.sync(() => logs), (l) => l.some((line) => line.includes(`attempt for ${queued.id} failed; it stays queued`)))
      NodeFs.rmSync(tmp)
      NodeFs.renameSync(`${tmp}.away`, tmp)
      // The state file still says "due" (it could not be rewritten); the 60 s hold alone keeps the
      // message back, through several polls.
      yield* Effect.sleep("300 millis")
      expect(relay.calls).toHaveLength(1)
      yield* Spool.flush(dir)
      yield* eventually(Effect.sync(() => relay.calls.length), (n) => n === 2, 3_000)
      yield* eventually(files(dir), (names) => names.length === 0)
    }))

  it.scopedLive("holds an entry handed over with a delay until it is due", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: slow, pollInterval: "50 millis",
        transports: new Map([["relay", relay.transport]])
      })
      yield* spool.enqueue({ ...entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }]), delay: "10 minutes" })
      yield* Effect.sleep("150 millis")
      expect(relay.calls).toEqual([])
      const [listed] = yield* Spool.list(dir)
      expect(listed!.nextAttempt.getTime() - Date.now()).toBeGreaterThan(9 * 60_000)
    }))
})
