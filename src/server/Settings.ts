/** The session machine's settings for one server generation, and the ids of sessions and transactions. */
import { randomBytes } from "node:crypto"
import type * as Engine from "../session/Engine.ts"
import type { ServerEnv } from "./Env.ts"

/** Short, unique, log-friendly ids (session and transaction). */
export const newId = (): string => randomBytes(8).toString("hex").toUpperCase()

/** One generation's sessions share their settings: nothing in them changes before a reload makes a new `ServerEnv`. */
const settingsCache = new WeakMap<ServerEnv, Engine.Settings>()

/** The machine's settings for a server's sessions (the in-memory test kit uses them too). */
export const of = (env: ServerEnv): Engine.Settings => {
  const cached = settingsCache.get(env)
  if (cached !== undefined) return cached
  const settings = makeSettings(env)
  settingsCache.set(env, settings)
  return settings
}

const makeSettings = (env: ServerEnv): Engine.Settings => {
  const { config } = env
  return {
    hostname: config.hostname,
    maxInvalidCommands: config.limits.maxInvalidCommands,
    maxAuthFailures: config.limits.maxAuthFailures,
    maxRecipients: config.limits.maxRecipients,
    maxMessageSize: config.limits.maxMessageSize,
    tls: env.tls() !== undefined,
    auth: env.pipeline.has("auth"),
    saslMechanisms: env.pipeline.mechanisms,
    allowInsecureAuth: config.allowInsecureAuth,
    checkStorage: env.spool !== undefined && config.spool?.minFreeSpace !== undefined,
    bareLineEndings: config.bareLineEndings,
    newId
  }
}
