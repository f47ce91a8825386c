#!/usr/bin/env node
// The npm bin entry. Plain JavaScript that every Node parses, so that a Node too old to run the
// TypeScript sources (type stripping needs 22.19) prints one line saying what to do instead of a
// stack trace about the `.ts` extension (ERR_UNKNOWN_FILE_EXTENSION). Bun, Deno and a recent Node
// go straight on to src/cli.ts, which reads process.argv as if it had been started itself.
//
// The npm package has no sources: it carries the emitted JavaScript (dist/, built at `npm pack`),
// because neither Node nor Deno strips types inside node_modules. A checkout runs the sources.
import { existsSync } from "node:fs"
import { relative } from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const source = new URL("../src/cli.ts", import.meta.url)
const cli = existsSync(source) ? source : new URL("../dist/src/cli.js", import.meta.url)
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
const plainNode = !("Bun" in globalThis) && !("Deno" in globalThis)

if (plainNode && (major < 22 || (major === 22 && minor < 19))) {
  const script = relative(process.cwd(), fileURLToPath(cli)) || fileURLToPath(cli)
  // Quoted for a POSIX shell, so that the suggested command can be pasted as it is.
  const quote = (arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)
  const args = process.argv.slice(2).map(quote).join(" ")
  process.stderr.write(
    `smtp-bridge needs Node >= 22.19 (this is Node ${process.versions.node}); run it under Bun instead: npx bun ${script}${args === "" ? "" : ` ${args}`}\n`
  )
  process.exit(1)
}

await import(cli.href)
