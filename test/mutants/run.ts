/**
 * The mutation check (`npm run test:mutants`, not part of `npm test`): plants each named bug
 * below into a scratch copy of the repository, one at a time, runs the test files that must
 * catch it (under Bun), and prints a table of caught and missed. Exits non-zero when any bug is
 * missed, when a search text is no longer in its file (the list must not rot silently), or when
 * the tests fail on the unmutated copy.
 *
 * Hand-written rather than Stryker: Stryker's vitest runner drives vitest in its own worker
 * threads under Node, while this suite runs in forked processes under Bun and Deno and starts
 * real servers; a short list of bugs that were once missed is the check that matters here.
 *
 *   bun test/mutants/run.ts              all mutants
 *   bun test/mutants/run.ts "fsync"      only those whose name contains "fsync"
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { mutants } from "./mutants.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const timeoutMs = 600_000

/** The working tree as it is (tracked and untracked, ignoring what .gitignore ignores). */
const copyTree = (into: string): void => {
  const listed = spawnSyncText("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root)
  for (const file of listed.split("\0").filter(Boolean)) {
    const from = path.join(root, file)
    if (!fs.existsSync(from)) continue // deleted in the working tree
    const to = path.join(into, file)
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.copyFileSync(from, to)
  }
  fs.symlinkSync(path.join(root, "node_modules"), path.join(into, "node_modules"), "dir")
}

const spawnSyncText = (command: string, args: ReadonlyArray<string>, cwd: string): string => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr}`)
  return result.stdout
}

interface Run {
  readonly code: number | null
  readonly output: string
  readonly seconds: number
}

const runTests = (cwd: string, files: ReadonlyArray<string>): Promise<Run> =>
  new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(path.join(root, "node_modules", ".bin", "bun"), ["--bun", "./node_modules/vitest/vitest.mjs", "run", ...files], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (t: string) => void (output += t))
    child.stderr.setEncoding("utf8").on("data", (t: string) => void (output += t))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output, seconds: Math.round((Date.now() - started) / 1000) })
    })
  })

/** Applies every edit of a mutant; throws when a search text is missing or not unique. */
const plant = (scratch: string, file: string, edits: ReadonlyArray<{ readonly search: string; readonly replace: string }>): string => {
  const target = path.join(scratch, file)
  const original = fs.readFileSync(target, "utf8")
  let text = original
  for (const { replace, search } of edits) {
    const count = text.split(search).length - 1
    if (count !== 1) throw new Error(`${file}: the search text occurs ${count} times (expected once):\n${search}`)
    text = text.replace(search, () => replace)
  }
  fs.writeFileSync(target, text)
  return original
}

const main = async () => {
  const filter = process.argv[2]
  const selected = mutants.filter((m) => filter === undefined || m.name.includes(filter))
  if (selected.length === 0) throw new Error(`no mutant matches ${JSON.stringify(filter)}`)
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "sb-mutants-"))
  try {
    copyTree(scratch)
    // Every search text is checked before anything runs, so a stale entry fails at once.
    for (const m of selected) fs.writeFileSync(path.join(scratch, m.file), plant(scratch, m.file, m.edits))

    const files = [...new Set(selected.flatMap((m) => m.tests))]
    console.log(`baseline: ${files.length} test files on the unmutated copy ...`)
    const baseline = await runTests(scratch, files)
    if (baseline.code !== 0) {
      console.log(baseline.output.slice(-6000))
      throw new Error("the tests fail on the unmutated copy: fix them before judging mutants")
    }
    console.log(`baseline passed in ${baseline.seconds} s\n`)

    const rows: Array<{ readonly name: string; readonly verdict: string; readonly seconds: number; readonly tests: string }> = []
    for (const m of selected) {
      const original = plant(scratch, m.file, m.edits)
      try {
        const run = await runTests(scratch, m.tests)
        // Caught means tests ran and failed; a file that no longer loads would fail without
        // saying anything about the tests, so it counts as an error, not a catch.
        const failedTests = /Tests\s+\d+ failed/.test(run.output)
        const verdict = run.code === 0 ? "MISSED" : failedTests ? "caught" : "ERROR"
        if (verdict !== "caught") console.log(`--- ${m.name}: ${verdict}\n${run.output.slice(-4000)}`)
        rows.push({ name: m.name, verdict, seconds: run.seconds, tests: m.tests.join(" ") })
        console.log(`${verdict.padEnd(7)} ${m.name} (${run.seconds} s)`)
      } finally {
        fs.writeFileSync(path.join(scratch, m.file), original)
      }
    }

    const width = Math.max(...rows.map((r) => r.name.length))
    console.log(`\n| ${"mutant".padEnd(width)} | verdict | s    | tests |`)
    console.log(`|${"-".repeat(width + 2)}|---------|------|-------|`)
    for (const r of rows) console.log(`| ${r.name.padEnd(width)} | ${r.verdict.padEnd(7)} | ${String(r.seconds).padStart(4)} | ${r.tests} |`)
    const bad = rows.filter((r) => r.verdict !== "caught")
    console.log(`\n${rows.length - bad.length} of ${rows.length} caught`)
    process.exitCode = bad.length === 0 ? 0 : 1
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

await main()
