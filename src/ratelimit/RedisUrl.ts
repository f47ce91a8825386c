/**
 * Redis URLs, read without the client: a pure leaf, so that the rate-limit options schema checks
 * a URL without loading sockets.
 */

export interface Target {
  readonly endpoint: { readonly host: string; readonly port: number }
  readonly tls: boolean
  readonly username: string | undefined
  readonly password: string | undefined
  readonly db: number
  readonly description: string
}

/**
 * Reads a Redis URL; the message names what is wrong without echoing a password.
 *
 * @example
 * RedisUrl.parse("redis://:secret@10.0.0.5:6380/2") // { endpoint: { host: "10.0.0.5", port: 6380 }, db: 2, ... }
 */
export const parse = (text: string): Target | string => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return `invalid Redis URL; expected redis://[user:password@]host[:port][/db]`
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return `invalid Redis URL scheme ${JSON.stringify(url.protocol)}; expected redis: or rediss:`
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1"
  const port = url.port === "" ? 6379 : Number(url.port)
  const path = url.pathname.replace(/^\//, "")
  const db = path === "" ? 0 : Number(path)
  if (!Number.isSafeInteger(db) || db < 0) return `invalid Redis database ${JSON.stringify(path)} in the URL; expected a number`
  const shown = `${url.protocol}//${host.includes(":") ? `[${host}]` : host}:${port}/${db}`
  return {
    endpoint: { host, port },
    tls: url.protocol === "rediss:",
    username: url.username === "" ? undefined : decodeURIComponent(url.username),
    password: url.password === "" ? undefined : decodeURIComponent(url.password),
    db,
    description: shown
  }
}

/** `"host:port"` (IPv6 in brackets) as an address; the port defaults to `defaultPort`. */
export const parseNode = (text: string, defaultPort: number): { readonly host: string; readonly port: number } | string => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim())
  const port = match?.[3] === undefined ? defaultPort : Number(match[3])
  if (match === null || port < 1 || port > 65_535) return `invalid node ${JSON.stringify(text)}; expected HOST:PORT`
  return { host: match[1] ?? match[2]!, port }
}
