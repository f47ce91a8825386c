/**
 * The import graph of src/ and plugins/ (every `import`/`export ... from "./x.ts"`, type-only
 * ones included: a type import is still a dependency a reader must follow), checked for cycles.
 * Any cycle fails: the layers of docs/architecture.md import only downwards.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { projectRoot } from "../support/runtimes.ts"

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(path.join(projectRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(relative)
    return entry.name.endsWith(".ts") ? [relative] : []
  })

// `import x from "..."`, `import type { A } from "..."`, `export * from "..."`, multi-line lists included.
const specifiers = /^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gms

/** Each file's local imports, as paths relative to the project root. */
export const graph = (roots: ReadonlyArray<string>): Map<string, ReadonlyArray<string>> => {
  const edges = new Map<string, ReadonlyArray<string>>()
  for (const file of roots.flatMap(sourceFiles)) {
    const text = fs.readFileSync(path.join(projectRoot, file), "utf8")
    const targets = [...text.matchAll(specifiers)]
      .map((m) => m[1] ?? m[2]!)
      .filter((s) => s.startsWith("."))
      .map((s) => path.normalize(path.join(path.dirname(file), s)))
    edges.set(file, [...new Set(targets)])
  }
  return edges
}

/** Strongly connected components of more than one file (or a file importing itself): the cycles. */
export const cycles = (edges: Map<string, ReadonlyArray<string>>): Array<Array<string>> => {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string): void => {
    indices.set(node, index)
    low.set(node, index)
    index++
    stack.push(node)
    onStack.add(node)
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue
      if (!indices.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indices.get(next)!))
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component: Array<string> = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1 || (edges.get(node) ?? []).includes(node)) found.push(component.sort())
    }
  }
  for (const node of edges.keys()) if (!indices.has(node)) visit(node)
  return found
}

describe("imports", () => {
  const edges = graph(["src", "plugins"])

  it("finds the cycles it is meant to find", () => {
    const sample = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]])
    expect(cycles(sample)).toEqual([["a.ts", "b.ts", "c.ts"]])
    expect(edges.get(path.join("src", "config", "Schema.ts"))).toContain(path.join("plugins", "rate-limit", "options.ts"))
  })

  it("has no import cycle anywhere in src/ or plugins/", () => {
    expect(cycles(edges)).toEqual([])
  })

  it("keeps the runtime layer below config: src/runtime imports nothing from src/config", () => {
    for (const [file, targets] of edges) {
      if (!file.startsWith(path.join("src", "runtime") + path.sep)) continue
      expect(targets.filter((t) => t.startsWith(path.join("src", "config") + path.sep)), file).toEqual([])
    }
  })

  it("keeps the session machine free of I/O: src/session imports no server, runtime, transport or config module", () => {
    const io = ["server", "runtime", "transport", "config"].map((d) => path.join("src", d) + path.sep)
    for (const [file, targets] of edges) {
      if (!file.startsWith(path.join("src", "session") + path.sep)) continue
      expect(targets.filter((t) => io.some((d) => t.startsWith(d))), file).toEqual([])
    }
  })

  it("keeps plugins' options.ts a leaf: it imports neither the plugin API (src/index.ts) nor src/config", () => {
    for (const [file, targets] of edges) {
      if (!/^plugins\/[^/]+\/options\.ts$/.test(file.split(path.sep).join("/"))) continue
      expect(targets.filter((t) => t === path.join("src", "index.ts") || t.startsWith(path.join("src", "config")))).toEqual([])
    }
  })

  it("keeps the config loader out of the plugin API: src/index.ts reaches neither config/Load.ts nor config/Resolve.ts", () => {
    const reached = new Set<string>()
    const walk = (file: string): void => {
      if (reached.has(file)) return
      reached.add(file)
      for (const next of edges.get(file) ?? []) walk(next)
    }
    walk(path.join("src", "index.ts"))
    expect([...reached].filter((f) => /config[/\\](Load|Resolve)\.ts$/.test(f))).toEqual([])
  })
})
