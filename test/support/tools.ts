/**
 * Whether a system tool that a test drives is installed. On a developer's machine a missing tool
 * skips the tests that need it; with `CI` set, it fails them instead, so that a CI run can never
 * pass with a feature silently untested (`npm test` installs every tool of .ci/packages first, or names what is missing).
 *
 * @example
 * describe.skipIf(!needTool("haproxy", haproxyAvailable()))("behind HAProxy", () => { ... })
 */
import * as fs from "node:fs"

/** `present`, or throws (failing the test file) when it is false and `CI` is set. */
export const needTool = (tool: string, present: boolean): boolean => {
  if (!present && process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false") {
    throw new Error(`${tool} is missing and CI is set: the tests that need it must run (install it, as .ci/run does)`)
  }
  return present
}

/** An executable installed at one of `paths`. */
export const installed = (...paths: ReadonlyArray<string>): boolean =>
  paths.some((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })
