/**
 * A small JSON Schema (draft-07) validator for the keywords the published hook schemas use
 * (type, enum, properties, required, additionalProperties, items, anyOf, $ref to #/$defs,
 * minimum, maximum, minLength, maxLength, maxItems, pattern), so that tests check real requests
 * and answers against the files themselves, not against the code that made them.
 */
type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [k: string]: Json }
type Schema = { readonly [k: string]: unknown }

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v

const known = new Set([
  "$schema", "$defs", "$ref", "$id", "type", "enum", "properties", "required", "additionalProperties", "items", "anyOf",
  "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "title", "description", "const"
])

/** Every problem found, as `path: what` lines; empty when `value` matches. */
export const validate = (root: Schema, value: Json): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const resolve = (s: Schema): Schema => {
    const ref = s["$ref"]
    if (typeof ref !== "string") return s
    const name = ref.replace(/^#\/\$defs\//, "")
    const target = (root["$defs"] as Record<string, Schema> | undefined)?.[name]
    if (target === undefined) throw new Error(`unresolved $ref ${ref}`)
    return { ...resolve(target), ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$ref")) }
  }
  const check = (schema: Schema, v: Json, at: string): boolean => {
    const s = resolve(schema)
    for (const k of Object.keys(s)) if (!known.has(k)) throw new Error(`${at}: keyword ${k} is not supported by this validator`)
    const before = problems.length
    const fail = (what: string) => void problems.push(`${at || "/"}: ${what}`)
    if (s["anyOf"] !== undefined) {
      const options = s["anyOf"] as ReadonlyArray<Schema>
      const ok = options.some((o) => {
        const saved = problems.length
        const matched = check(o, v, at)
        problems.length = saved
        return matched
      })
      if (!ok) fail("matches none of anyOf")
    }
    const t = s["type"]
    if (t !== undefined) {
      const types = Array.isArray(t) ? t : [t]
      const actual = typeOf(v)
      if (!types.some((x) => x === actual || (x === "number" && actual === "integer"))) fail(`expected ${types.join("|")}, got ${actual}`)
    }
    if (s["enum"] !== undefined && !(s["enum"] as ReadonlyArray<unknown>).some((e) => e === v)) fail(`not one of ${JSON.stringify(s["enum"])}`)
    if (s["const"] !== undefined && s["const"] !== v) fail(`not ${JSON.stringify(s["const"])}`)
    if (typeof v === "number") {
      if (typeof s["minimum"] === "number" && v < s["minimum"]) fail(`below ${s["minimum"]}`)
      if (typeof s["maximum"] === "number" && v > s["maximum"]) fail(`above ${s["maximum"]}`)
    }
    if (typeof v === "string") {
      if (typeof s["minLength"] === "number" && v.length < s["minLength"]) fail("too short")
      if (typeof s["maxLength"] === "number" && v.length > s["maxLength"]) fail("too long")
      if (typeof s["pattern"] === "string" && !new RegExp(s["pattern"], "u").test(v)) fail(`does not match ${s["pattern"]}`)
    }
    if (Array.isArray(v)) {
      if (typeof s["maxItems"] === "number" && v.length > s["maxItems"]) fail("too many items")
      if (typeof s["minItems"] === "number" && v.length < s["minItems"]) fail("too few items")
      if (s["items"] !== undefined) v.forEach((item, i) => check(s["items"] as Schema, item, `${at}/${i}`))
    }
    if (typeOf(v) === "object") {
      const o = v as { readonly [k: string]: Json }
      for (const r of (s["required"] as ReadonlyArray<string> | undefined) ?? []) if (!(r in o)) fail(`missing ${r}`)
      const props = (s["properties"] as Record<string, Schema> | undefined) ?? {}
      for (const [k, item] of Object.entries(o)) {
        if (props[k] !== undefined) check(props[k], item, `${at}/${k}`)
        else if (s["additionalProperties"] === false) fail(`unexpected property ${k}`)
        else if (typeof s["additionalProperties"] === "object") check(s["additionalProperties"] as Schema, item, `${at}/${k}`)
      }
    }
    return problems.length === before
  }
  check(root, value, "")
  return problems
}
