/**
 * `npm run fuzz -- [--mode parsers|network|all] [--seconds N] [--runtime bun|deno|node]
 *                  [--concurrency N] [--seed N]`
 *
 * Runs the in-process parser fuzzers (under the runtime running this script) and the network
 * fuzzer against the real CLI (under --runtime) for the time given, then prints what it checked
 * and every violation with the seed that reproduces it; exits 1 when anything broke. Not part of
 * `npm test`: a fuzzing run is long by design. docs/fuzzing.md says what each oracle means.
 */
import type { Runtime } from "../support/runtimes.ts"
import * as Network from "./Network.ts"
import { targets } from "./Parsers.ts"
import * as Random from "./Random.ts"

const args = process.argv.slice(2)
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? fallback : args[i + 1] ?? fallback
}
const mode = flag("mode", "all")
const seconds = Number(flag("seconds", "60"))
const runtime = flag("runtime", "bun") as Runtime
const concurrency = Number(flag("concurrency", "8"))
const seed = Number(flag("seed", String(Math.floor(Math.random() * 2 ** 31))))
if (!["parsers", "network", "all"].includes(mode) || !(seconds > 0) || !["bun", "deno", "node"].includes(runtime)) {
  console.error("usage: fuzz [--mode parsers|network|all] [--seconds N] [--runtime bun|deno|node] [--concurrency N] [--seed N]")
  process.exit(2)
}
const share = mode === "all" ? seconds / 2 : seconds
const failures: Array<string> = []
console.log(`fuzz: mode ${mode}, ${seconds} s, seed ${seed}`)

if (mode !== "network") {
  const names = Object.keys(targets)
  const counts = Object.fromEntries(names.map((n) => [n, 0]))
  const deadline = Date.now() + share * 1000
  for (let i = 0; Date.now() < deadline && failures.length < 20; i++) {
    for (const name of names) {
      const inputSeed = (seed + i * names.length + names.indexOf(name)) >>> 0
      const problem = targets[name]!(Random.make(inputSeed))
      counts[name]++
      if (problem !== undefined) failures.push(`parser ${name} (input seed ${inputSeed}): ${problem}`)
    }
  }
  console.log(`parsers: ${Object.entries(counts).map(([n, c]) => `${n} ${c}`).join(", ")}`)
}

if (mode !== "parsers") {
  const report = await Network.run({ runtime, seconds: share, concurrency, seed, replyTimeoutMs: 10_000 }, (line) => console.log(line))
  console.log(
    `network (${runtime}): ${report.sessions} sessions, ${report.replies} replies checked, ${report.accepted} messages accepted and checked byte-exact, RSS ${report.baseRssMiB.toFixed(0)} -> peak ${report.peakRssMiB.toFixed(0)} MiB`
  )
  failures.push(...report.violations.map((v) => `network: ${v}`))
}

for (const failure of failures.slice(0, 40)) console.log(`VIOLATION ${failure}`)
console.log(failures.length === 0 ? "fuzz: no violation" : `fuzz: ${failures.length} violation(s)`)
process.exit(failures.length === 0 ? 0 : 1)
