// `smtp-bridge dkim keygen --domain D --selector S --algorithm A --out FILE`: the key file is
// PEM with mode 0600 and is never overwritten; stdout is the TXT value alone.
import { NodeContext } from "@effect/platform-node"
import { Command } from "@effect/cli"
import { describe, expect, it } from "@effect/vitest"
import { type Console, Effect } from "effect"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { dkim, keygenToFile } from "../../../src/commands/Dkim.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "sb-keygen-"))

/** Runs `dkim ...args` and returns what it printed on stdout and stderr. */
const runCli = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const console: Console.Console = {
      ...(yield* Effect.console),
      log: (...a: ReadonlyArray<unknown>) => Effect.sync(() => void out.push(a.join(" "))),
      error: (...a: ReadonlyArray<unknown>) => Effect.sync(() => void err.push(a.join(" ")))
    }
    yield* Command.run(dkim, { name: "smtp-bridge dkim", version: "0" })(["bun", "dkim", ...args]).pipe(
      Effect.withConsole(console),
      Effect.provide(NodeContext.layer)
    )
    return { out, err }
  })

describe("dkim keygen", () => {
  it.live("writes an Ed25519 key with mode 0600 and prints the v=DKIM1 record for selector._domainkey.domain", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "ed.pem")
      const { out, err } = yield* runCli(["keygen", "--domain", "example.org", "--selector", "s1", "--algorithm", "ed25519", "--out", file])
      expect(out).toHaveLength(1)
      expect(out[0]).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/)
      expect(err.join("")).toContain("s1._domainkey.example.org")
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      const key = Crypto.createPrivateKey(fs.readFileSync(file, "utf8"))
      expect(key.asymmetricKeyType).toBe("ed25519")
    }))

  it.live("makes 2048-bit RSA keys by default and refuses to overwrite an existing key file", () =>
    Effect.gen(function*() {
      const file = path.join(tmp(), "rsa.pem")
      const key = yield* keygenToFile({ domain: "example.org", selector: "s2", algorithm: "rsa", out: file })
      expect(Crypto.createPrivateKey(key.privateKeyPem).asymmetricKeyDetails?.modulusLength).toBe(2048)
      const again = yield* Effect.flip(keygenToFile({ domain: "example.org", selector: "s2", algorithm: "rsa", out: file }))
      expect(again.reason).toBe("Exists")
      expect(fs.readFileSync(file, "utf8")).toBe(key.privateKeyPem)
    }))

  it.live("refuses a domain that is not a domain name", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(keygenToFile({ domain: "exa mple", selector: "s", algorithm: "rsa", out: path.join(tmp(), "k") }))
      expect(error.message).toBe(`"exa mple" is not a domain name`)
    }))
})
