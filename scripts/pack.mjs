// `npm pack` / `npm publish` hooks (prepack, postpack). Plain JavaScript: npm may run it with a
// Node too old to strip types (the machine's Node 20 in CI).
//
// The repository runs its TypeScript sources, and its package.json says so (exports
// "./src/index.ts"), because Bun, Deno and Node >= 22.19 strip types there. Inside node_modules
// neither Node nor Deno strips types (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), so the npm
// package carries emitted .js + .d.ts in dist/ and a package.json whose exports point at them:
//
//   prepack:  tsc -p tsconfig.build.json -> dist/; dist/package.json (the manifest nearest to the
//             emitted files: their "type", their version import, and "smtp-bridge" resolving to
//             itself for the built-in plugins); package.json rewritten for the tarball, the
//             source manifest kept in .tmp/package.json.source
//   postpack: package.json restored from .tmp/package.json.source
//
// A pack that died between the two leaves the backup; the next prepack restores it first.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const manifest = join(root, "package.json")
const backup = join(root, ".tmp", "package.json.source")

/** "./src/index.ts" -> { types: "./dist/src/index.d.ts", default: "./dist/src/index.js" }, under `base`. */
const emitted = (source, base) => {
  const stem = source.replace(/^\.\//, "").replace(/\.ts$/, "")
  return { types: `${base}${stem}.d.ts`, default: `${base}${stem}.js` }
}

/** The exports of the source manifest whose file exists (an entry may name a module not written yet). */
const exportsOf = (pkg) =>
  Object.entries(typeof pkg.exports === "string" ? { ".": pkg.exports } : pkg.exports)
    .filter(([subpath, source]) => {
      if (existsSync(join(root, source))) return true
      process.stderr.write(`smtp-bridge pack: ${subpath} is left out: ${source} does not exist\n`)
      return false
    })

const restore = () => {
  if (existsSync(backup)) renameSync(backup, manifest)
}

const prepack = () => {
  restore()
  const pkg = JSON.parse(readFileSync(manifest, "utf8"))
  rmSync(join(root, "dist"), { recursive: true, force: true })
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], {
    cwd: root,
    stdio: "inherit"
  })
  const entries = exportsOf(pkg)
  writeFileSync(
    join(root, "dist", "package.json"),
    `${JSON.stringify({
      name: pkg.name,
      version: pkg.version,
      type: "module",
      exports: Object.fromEntries(entries.map(([subpath, source]) => [subpath, emitted(source, "./")]))
    }, null, 2)}\n`
  )
  mkdirSync(dirname(backup), { recursive: true })
  writeFileSync(backup, readFileSync(manifest))
  const packed = { ...pkg, exports: Object.fromEntries(entries.map(([subpath, source]) => [subpath, emitted(source, "./dist/")])) }
  writeFileSync(manifest, `${JSON.stringify(packed, null, 2)}\n`)
}

const step = process.argv[2]
if (step === "prepack") prepack()
else if (step === "postpack") restore()
else {
  process.stderr.write("usage: node scripts/pack.mjs prepack|postpack\n")
  process.exit(2)
}
