/**
 * Parsers for the small languages inside config values: addresses with ports, CIDR blocks, sizes.
 * Pure and runtime-neutral (no `node:net`), so they run wherever the config is checked.
 */
import * as Senders from "../pipeline/Senders.ts"
import * as Cidr from "../util/Cidr.ts"
import * as Units from "../util/Units.ts"

const octet = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"
const ipv4 = new RegExp(`^${octet}(?:\\.${octet}){3}$`)
const hexGroup = /^[0-9a-f]{1,4}$/i

export const isIPv4 = (s: string): boolean => ipv4.test(s)

/** RFC 4291 text form, `::` compression and a trailing dotted IPv4 included; no zone id. */
export const isIPv6 = (s: string): boolean => {
  const halves = s.split("::")
  if (halves.length > 2) return false
  const groups = (part: string): Array<string> => (part === "" ? [] : part.split(":"))
  const all = [...groups(halves[0]!), ...(halves.length === 2 ? groups(halves[1]!) : [])]
  let count = all.length
  // An embedded IPv4 address (::ffff:192.0.2.1) stands for the last two groups.
  const last = all[all.length - 1]
  if (last !== undefined && last.includes(".")) {
    if (!isIPv4(last)) return false
    all.pop()
    count += 1
  }
  if (!all.every((g) => hexGroup.test(g))) return false
  return halves.length === 2 ? count < 8 : count === 8
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
export const isHostname = (s: string): boolean =>
  s.length > 0 && s.length <= 253 &&
  s.replace(/\.$/, "").split(".").every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(label))

export interface HostPort {
  /** Without brackets, as `net.Server.listen` wants it. */
  readonly host: string
  readonly port: number
}

/** `"host:port"`, `"192.0.2.1:25"` or `"[::1]:2525"` (IPv6 needs brackets; a zone id is allowed). */
export const parseHostPort = (s: string): HostPort | undefined => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s)
  if (match === null) return undefined
  const port = Number(match[3])
  if (port > 65535) return undefined
  if (match[1] !== undefined) {
    const [address, zone] = match[1].split("%", 2)
    if (!isIPv6(address!) || zone === "") return undefined
    return { host: match[1], port }
  }
  const host = match[2]!
  return isIPv4(host) || isHostname(host) ? { host, port } : undefined
}

/**
 * `"10.0.0.0/8"`, `"2001:db8::/32"` or a bare address: exactly what the relay policy will match
 * against, so the config check and the runtime never disagree.
 */
export const isCidr = (s: string): boolean => Cidr.parse(s) !== undefined

/** Bytes from a number or a string like `"25MB"` (see `util/Units.ts`). */
export const parseSize = Units.parseSize

/**
 * A `senders` entry: `"*"`, a domain `"@example.com"` or an address `"alice@example.com"`; the
 * domain may be an IDN (`@bücher.example`), as the sender rules compare A-labels.
 */
export const isSenderPattern = (s: string): boolean => !/[\s<>]/.test(s) && Senders.parsePattern(s) !== undefined
