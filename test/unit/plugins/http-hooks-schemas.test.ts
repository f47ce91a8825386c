// docs/schemas/*.json are what the plugin's own schemas give: a change to the request or the
// answer that is not published fails here.
import { describe, expect, it } from "@effect/vitest"
import { JSONSchema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Wire from "../../../plugins/http-hooks/Wire.ts"

const published = (name: string) => JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "..", "..", "..", "docs", "schemas", name), "utf8"))

describe("the published HTTP hook schemas", () => {
  it("docs/schemas/hook-request.json is the request schema", () => {
    expect(published("hook-request.json")).toEqual(JSONSchema.make(Wire.Request))
  })
  it("docs/schemas/hook-response.json is the response schema", () => {
    expect(published("hook-response.json")).toEqual(JSONSchema.make(Wire.Response))
  })
})
