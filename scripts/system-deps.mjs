// The first step of `npm test`: are the system tools the tests drive installed (swaks, smtp-sink,
// redis-server, ...)? The list is .ci/packages (one Debian package a line, with what the tests run
// from it). As root on Debian the missing packages are installed here (one `apt-get update`, then
// `apt-get install --no-install-recommends`, under `flock /tmp/apt.lock` as other jobs may share
// dpkg, with a policy-rc.d so no service starts). Anywhere else, one line names what is missing
// and how to install it, and the run fails: a test run must not pass with features untested.
//
// Plain JavaScript: npm may run it with a Node too old to strip types (the machine's Node 20).
//
//   node scripts/system-deps.mjs [--check-only] [--packages FILE]
//     --check-only  never install; report and fail as on a machine that cannot install
import { execFileSync, spawnSync } from "node:child_process"
import { accessSync, constants, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { delimiter, dirname, isAbsolute, join } from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const checkOnly = args.includes("--check-only")
const listFile = args.includes("--packages") ? args[args.indexOf("--packages") + 1] : join(root, ".ci", "packages")

/** `{ packages: [{ name, check }], debconf: [selection] }` from the list's text. */
const parseList = (text) => {
  const packages = []
  const debconf = []
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    if (line.startsWith("debconf:")) {
      debconf.push(line.slice("debconf:".length).trim())
      continue
    }
    const [name, check, ...rest] = line.split(/\s+/)
    if (check === undefined || rest.length > 0) throw new Error(`${listFile}: expected "PACKAGE CHECK", got ${JSON.stringify(line)}`)
    packages.push({ name, check })
  }
  return { packages, debconf }
}

const executable = (file) => {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const onPath = (command) => (process.env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && executable(join(dir, command)))

const runs = (command, argv) => spawnSync(command, argv, { stdio: "ignore", timeout: 20_000 }).status === 0

/** Whether what the tests use from a package is there. */
const present = ({ check }) => {
  if (check.startsWith("python3:")) {
    // The Debian module is what the tests import, with the system's python3 (not a pyenv shim's).
    const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    return runs(python, ["-c", `import ${check.slice("python3:".length)}`])
  }
  if (check.startsWith("perl:")) return runs("perl", [`-M${check.slice("perl:".length)}`, "-e", "1"])
  if (isAbsolute(check)) return existsSync(check)
  return onPath(check)
}

const canInstall = () =>
  !checkOnly && typeof process.getuid === "function" && process.getuid() === 0 && existsSync("/etc/debian_version") && onPath("apt-get") &&
  onPath("flock")

const apt = (argv, env) =>
  execFileSync("flock", ["/tmp/apt.lock", "apt-get", ...argv], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } })

const install = (missing, debconf) => {
  const env = { DEBIAN_FRONTEND: "noninteractive" }
  const names = new Set(missing.map((p) => p.name))
  const selections = debconf.filter((s) => names.has(s.split(/\s+/)[0]))
  if (selections.length > 0) {
    execFileSync("flock", ["/tmp/apt.lock", "debconf-set-selections"], { input: `${selections.join("\n")}\n`, stdio: ["pipe", "inherit", "inherit"] })
  }
  // No service may start while packages install (postfix, redis, dovecot ... would).
  const policy = "/usr/sbin/policy-rc.d"
  const ownPolicy = !existsSync(policy)
  if (ownPolicy) writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 })
  try {
    process.stderr.write(`smtp-bridge tests: installing ${[...names].join(" ")}\n`)
    apt(["update", "-q"], env)
    apt(["install", "-y", "-q", "--no-install-recommends", ...names], env)
  } finally {
    if (ownPolicy) rmSync(policy, { force: true })
  }
}

const main = () => {
  const { packages, debconf } = parseList(readFileSync(listFile, "utf8"))
  let missing = packages.filter((p) => !present(p))
  if (missing.length > 0 && canInstall()) {
    install(missing, debconf)
    missing = packages.filter((p) => !present(p))
  }
  if (missing.length === 0) return 0
  const names = [...new Set(missing.map((p) => p.name))]
  process.stderr.write(
    `smtp-bridge tests need system tools that are missing: ${missing.map((p) => `${p.check} (${p.name})`).join(", ")}; ` +
      `on Debian or Ubuntu install them with: sudo apt-get install --no-install-recommends ${names.join(" ")}\n`
  )
  return 1
}

process.exit(main())
