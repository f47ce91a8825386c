/**
 * The first problem of an `effect/Schema` parse issue, as one line a person can act on:
 * `limits.maxRecipients: expected a positive integer, got -1`. Shared by the config loader and by
 * plugins' options (built-in or a user's), so that both report a bad value the same way. A pure
 * leaf: it imports only `effect`.
 *
 * @example
 * const problem = Issue.first(parseError.issue)
 * Issue.line(problem) // 'delay: expected a duration like "30 seconds", got "soon"'
 */
import type * as Arr from "effect/Array"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as SchemaAST from "effect/SchemaAST"

export interface Problem {
  /** `Unknown`: a key the schema does not have; `Missing`: a required key absent; `Invalid`: a wrong value. */
  readonly kind: "Unknown" | "Missing" | "Invalid"
  readonly path: ReadonlyArray<PropertyKey>
  /** What the innermost annotated schema expects, in its own words. */
  readonly expected: string | undefined
  /** What a filter said is wrong, when it said (a URL's bad parameter). */
  readonly detail: string | undefined
  readonly actual: unknown
  /** For `Unknown`: the keys the object may have. */
  readonly known: ReadonlyArray<string>
}

/** A schema's own words for what it expects: its `description`. */
export const description = (ast: SchemaAST.Annotated): string | undefined =>
  Option.getOrUndefined(SchemaAST.getDescriptionAnnotation(ast))

const isNonEmpty = <A>(u: A | Arr.NonEmptyReadonlyArray<A>): u is Arr.NonEmptyReadonlyArray<A> => Array.isArray(u)

/** How far into the value an issue got: a union reports the member that matched the value's shape best. */
const depth = (issue: ParseResult.ParseIssue): number => {
  switch (issue._tag) {
    case "Pointer":
      return 2 + depth(issue.issue)
    case "Composite":
      return 1 + Math.max(...(isNonEmpty(issue.issues) ? issue.issues : [issue.issues]).map(depth))
    case "Refinement":
      return (issue.kind === "Predicate" ? 1 : 0) + depth(issue.issue)
    case "Transformation":
      return 1 + depth(issue.issue)
    case "Unexpected":
    case "Missing":
      return 1
    default:
      return 0
  }
}

const pick = (issues: ParseResult.SingleOrNonEmpty<ParseResult.ParseIssue>, ast: SchemaAST.AST): ParseResult.ParseIssue => {
  if (!isNonEmpty(issues)) return issues
  if (!SchemaAST.isUnion(ast)) return issues[0]
  let best = issues[0]
  for (const issue of issues) if (depth(issue) > depth(best)) best = issue
  return best
}

/** Follows the first issue down to its leaf, collecting the path and the innermost field's phrase. */
export const first = (issue: ParseResult.ParseIssue, phraseOf: (ast: SchemaAST.Annotated) => string | undefined = description): Problem => {
  const path: Array<PropertyKey> = []
  let expected: string | undefined
  let known: ReadonlyArray<string> = []
  let current: ParseResult.ParseIssue = issue
  for (;;) {
    if ("ast" in current) {
      expected ??= phraseOf(current.ast)
      const ast: SchemaAST.Annotated = current.ast
      if (ast instanceof SchemaAST.TypeLiteral) known = ast.propertySignatures.map((p) => String(p.name))
    }
    switch (current._tag) {
      case "Pointer": {
        const keys: ReadonlyArray<PropertyKey> = typeof current.path === "object" ? current.path : [current.path]
        path.push(...keys)
        expected = undefined
        current = current.issue
        break
      }
      case "Composite":
        current = pick(current.issues, current.ast)
        break
      case "Refinement":
      case "Transformation":
        current = current.issue
        break
      case "Unexpected":
        return { kind: "Unknown", path, expected: undefined, detail: undefined, actual: current.actual, known }
      case "Missing":
        // Its ast is the property signature; the phrase sits on the property's type.
        return { kind: "Missing", path, expected: expected ?? phraseOf(current.ast.type), detail: undefined, actual: undefined, known }
      default: {
        // A filter that says what is wrong (a relay URL's parameter) adds it to the phrase.
        const detail = current._tag === "Type" && typeof current.message === "string" ? current.message : undefined
        return { kind: "Invalid", path, expected, detail, actual: current.actual, known }
      }
    }
  }
}

/** `limits.maxRecipients`, `trust[1]`, `senders["a@b"]`; empty for the root. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out
}

/** A value in a message: short, and never a whole object. */
export const describe = (value: unknown): string => {
  if (value === undefined) return "nothing"
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  if (value === null) return "null"
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "an array"
  if (typeof value === "function") return "a function"
  return "an object"
}

/** The phrase after the field: `expected X (detail)` or `unknown option, expected one of a, b`. */
export const expectation = (problem: Problem): string =>
  problem.kind === "Unknown"
    ? `one of ${problem.known.join(", ")}`
    : problem.detail === undefined
    ? problem.expected ?? "a valid value"
    : `${problem.expected ?? "a valid value"} (${problem.detail})`

/** One line: `FIELD: expected WHAT, got VALUE` (the field left out when the root is wrong). */
export const line = (problem: Problem, field = formatPath(problem.path)): string => {
  const prefix = field === "" ? "" : `${field}: `
  return problem.kind === "Unknown"
    ? `${prefix}unknown option, expected ${expectation(problem)}`
    : `${prefix}expected ${expectation(problem)}, got ${describe(problem.actual)}`
}
