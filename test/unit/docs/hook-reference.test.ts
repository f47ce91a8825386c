// docs/plugins.md's hook reference, checked against the types: the `Hooks` interface of
// src/pipeline/Plugin.ts is read with the TypeScript compiler, and the table must list exactly
// its hooks, each with exactly the fields of its context and its result type. A hook, a context
// field or a result added to the types without the docs fails here.
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { hookNames } from "../../../src/pipeline/Plugin.ts"
import { projectRoot } from "../../support/runtimes.ts"

interface Entry {
  readonly context: ReadonlyArray<string>
  readonly gives: string
}

/** Every hook of `Hooks`: the fields of its context interface and its result type, as written. */
const fromTypes = (): Map<string, Entry> => {
  const file = path.join(projectRoot, "src", "pipeline", "Plugin.ts")
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
  const interfaces = new Map<string, ts.InterfaceDeclaration>()
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node)) interfaces.set(node.name.text, node)
  })
  const hooks = interfaces.get("Hooks")
  if (hooks === undefined) throw new Error("no Hooks interface in Plugin.ts")
  const out = new Map<string, Entry>()
  for (const member of hooks.members) {
    if (!ts.isPropertySignature(member) || member.type === undefined || !ts.isTypeReferenceNode(member.type)) continue
    const [ctx, result] = member.type.typeArguments ?? []
    const ctxName = ctx !== undefined && ts.isTypeReferenceNode(ctx) ? ctx.typeName.getText(source) : ""
    const ctxInterface = interfaces.get(ctxName)
    if (ctxInterface === undefined) throw new Error(`no interface ${ctxName} for ${member.name.getText(source)}`)
    out.set(member.name.getText(source), {
      context: ctxInterface.members.map((m) => m.name!.getText(source)),
      gives: result!.getText(source)
    })
  }
  return out
}

/** The rows of the table between the hook-reference markers. */
const fromDocs = (): Map<string, Entry> => {
  const text = fs.readFileSync(path.join(projectRoot, "docs", "plugins.md"), "utf8")
  const table = /<!-- hook-reference -->\n([\s\S]*?)<!-- \/hook-reference -->/.exec(text)
  if (table === null) throw new Error("docs/plugins.md has no hook-reference table")
  const out = new Map<string, Entry>()
  for (const row of table[1]!.split("\n").slice(2)) {
    if (row.trim() === "") continue
    // Cells split at | not escaped as \|.
    const cells = row.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim().replaceAll("\\|", "|"))
    const name = /^`(\w+)`$/.exec(cells[0]!)?.[1]
    if (name === undefined) throw new Error(`a row without a hook name: ${row}`)
    out.set(name, {
      // The context cell names each field in backticks; a parenthesis may explain one.
      context: [...cells[2]!.replace(/\([^)]*\)/g, "").matchAll(/`(\w+)`/g)].map((m) => m[1]!),
      gives: cells[3]!.replace(/^`|`$/g, "")
    })
  }
  return out
}

describe("docs/plugins.md hook reference", () => {
  const types = fromTypes()
  const docs = fromDocs()

  it("reads the types it is meant to check: every hook the pipeline runs", () => {
    // `saslMechanisms` is a plain function of the session, not a hook with a context and a result:
    // the guide describes it in its own section ("SASL mechanisms of your own").
    expect([...types.keys()].sort()).toEqual(hookNames.filter((h) => h !== "saslMechanisms").sort())
    expect(types.get("rcptTo")).toEqual({ context: ["session", "transaction", "recipient"], gives: "Verdict" })
  })

  it("lists exactly the hooks of the Hooks interface", () => {
    expect([...docs.keys()].sort()).toEqual([...types.keys()].sort())
  })

  it.each([...types.keys()])("gives %s's context fields and result type as the types do", (hook) => {
    expect(docs.get(hook)).toEqual(types.get(hook))
  })
})
