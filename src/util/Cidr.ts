/**
 * CIDR network lists for trust and rate-limit decisions, IPv4 and IPv6, without dependencies.
 * An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as dual-stack sockets report IPv4 clients)
 * counts as the IPv4 address, so `192.0.2.0/24` matches it.
 *
 * @example
 * import * as Cidr from "./Cidr.ts"
 * const list = Cidr.parseList(["10.0.0.0/8", "2001:db8::/32"])
 * if ("ok" in list) Cidr.matchAny(list.ok, "::ffff:10.1.2.3") // true
 * Cidr.aggregate("192.0.2.77", 24, 64) // "192.0.2.0/24"
 */

/** A network: `family`, the masked network number and the prefix length. */
export interface Cidr {
  readonly family: 4 | 6
  readonly network: bigint
  readonly prefix: number
}

interface Address {
  readonly family: 4 | 6
  readonly value: bigint
}

const bitsOf = (family: 4 | 6): number => (family === 4 ? 32 : 128)

const maskOf = (family: 4 | 6, prefix: number): bigint => {
  const bits = BigInt(bitsOf(family))
  const all = (1n << bits) - 1n
  return (all >> BigInt(prefix)) ^ all
}

// Leading zeros are refused: some tools read `010` as octal, others as decimal, and a trust list
// must not mean two different networks.
const parseV4 = (text: string): bigint | undefined => {
  const parts = text.split(".")
  if (parts.length !== 4) return undefined
  let value = 0n
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined
    const n = Number(part)
    if (n > 255) return undefined
    value = (value << 8n) | BigInt(n)
  }
  return value
}

const parseGroups = (text: string): Array<number> | undefined => {
  if (text === "") return []
  const out: Array<number> = []
  for (const group of text.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined
    out.push(parseInt(group, 16))
  }
  return out
}

const parseV6 = (input: string): bigint | undefined => {
  let text = input
  const tail: Array<number> = []
  // An embedded dotted quad fills the last 32 bits (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`).
  const lastColon = text.lastIndexOf(":")
  if (lastColon >= 0 && text.slice(lastColon + 1).includes(".")) {
    const v4 = parseV4(text.slice(lastColon + 1))
    if (v4 === undefined) return undefined
    tail.push(Number(v4 >> 16n), Number(v4 & 0xffffn))
    // A placeholder group keeps the `::` arithmetic below simple; it is popped again.
    text = text.slice(0, lastColon + 1) + "0"
  }
  const halves = text.split("::")
  if (halves.length > 2) return undefined
  let groups: Array<number>
  if (halves.length === 2) {
    const head = parseGroups(halves[0]!)
    const rest = parseGroups(halves[1]!)
    if (head === undefined || rest === undefined) return undefined
    if (tail.length > 0) rest.pop()
    const missing = 8 - head.length - rest.length - tail.length
    if (missing < 1) return undefined
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail]
  } else {
    const all = parseGroups(text)
    if (all === undefined) return undefined
    if (tail.length > 0) all.pop()
    groups = [...all, ...tail]
    if (groups.length !== 8) return undefined
  }
  let value = 0n
  for (const g of groups) value = (value << 16n) | BigInt(g)
  return value
}

const MAPPED_PREFIX = 0xffffn << 32n

const isMapped = (value: bigint): boolean => value >> 32n === 0xffffn

// Every connection looks its client's address up several times (per-address limit, trusted
// networks, the Received header) and clients come back: parsed addresses are kept, a bounded few.
const parsedCache = new Map<string, Address | undefined>()
const parsedCacheSize = 4096

const parseAddress = (input: string): Address | undefined => {
  const cached = parsedCache.get(input)
  if (cached !== undefined || parsedCache.has(input)) return cached
  const parsed = parseAddressUncached(input)
  if (parsedCache.size >= parsedCacheSize) parsedCache.clear()
  parsedCache.set(input, parsed)
  return parsed
}

const parseAddressUncached = (input: string): Address | undefined => {
  let text = input.trim()
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1)
  if (text.toLowerCase().startsWith("ipv6:")) text = text.slice(5)
  if (!text.includes(":")) {
    const v4 = parseV4(text)
    return v4 === undefined ? undefined : { family: 4, value: v4 }
  }
  // A zone (`fe80::1%eth0`) only selects an interface; it does not change the address.
  const zone = text.indexOf("%")
  if (zone >= 0) text = text.slice(0, zone)
  const v6 = parseV6(text)
  if (v6 === undefined) return undefined
  return isMapped(v6) ? { family: 4, value: v6 - MAPPED_PREFIX } : { family: 6, value: v6 }
}

/**
 * Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128 network). Host bits below the
 * prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`). Returns `undefined` for anything else.
 *
 * @example
 * Cidr.parse("192.0.2.0/24") // { family: 4, network: 3221225984n, prefix: 24 }
 * Cidr.parse("192.0.2.0/33") // undefined
 */
export const parse = (text: string): Cidr | undefined => {
  const trimmed = text.trim()
  const slash = trimmed.indexOf("/")
  const addressText = slash >= 0 ? trimmed.slice(0, slash) : trimmed
  if (addressText.includes("%")) return undefined
  const written = addressText.includes(":") ? parseV6(addressText) : parseV4(addressText)
  if (written === undefined) return undefined
  const writtenFamily: 4 | 6 = addressText.includes(":") ? 6 : 4
  let prefix = bitsOf(writtenFamily)
  if (slash >= 0) {
    const prefixText = trimmed.slice(slash + 1)
    if (!/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined
    prefix = Number(prefixText)
    if (prefix > bitsOf(writtenFamily)) return undefined
  }
  // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8 written the IPv6 way.
  if (writtenFamily === 6 && prefix >= 96 && isMapped(written)) {
    const v4Prefix = prefix - 96
    return { family: 4, network: (written - MAPPED_PREFIX) & maskOf(4, v4Prefix), prefix: v4Prefix }
  }
  return { family: writtenFamily, network: written & maskOf(writtenFamily, prefix), prefix }
}

/**
 * Parses every entry, or names the first one that is not a network.
 *
 * @example
 * Cidr.parseList(["10.0.0.0/8", "nope"]) // { error: 'invalid CIDR "nope" (entry 2)...' }
 */
export const parseList = (
  texts: ReadonlyArray<string>
): { readonly ok: ReadonlyArray<Cidr> } | { readonly error: string } => {
  const ok: Array<Cidr> = []
  for (let i = 0; i < texts.length; i++) {
    const cidr = parse(texts[i]!)
    if (cidr === undefined) {
      return {
        error: `invalid CIDR ${JSON.stringify(texts[i])} (entry ${i + 1}); expected an address ` +
          `or a network such as 192.0.2.0/24 or 2001:db8::/32`
      }
    }
    ok.push(cidr)
  }
  return { ok }
}

const within = (cidr: Cidr, address: Address): boolean =>
  cidr.family === address.family && (address.value & maskOf(cidr.family, cidr.prefix)) === cidr.network

/**
 * Whether `address` lies in the network. An address that does not parse is in no network.
 *
 * @example
 * Cidr.contains(Cidr.parse("10.0.0.0/8")!, "10.9.8.7") // true
 */
export const contains = (cidr: Cidr, address: string): boolean => {
  const parsed = parseAddress(address)
  return parsed !== undefined && within(cidr, parsed)
}

/**
 * Whether `address` lies in any of the networks.
 *
 * @example
 * Cidr.matchAny([Cidr.parse("127.0.0.1")!, Cidr.parse("::1")!], "::1") // true
 */
export const matchAny = (list: ReadonlyArray<Cidr>, address: string): boolean => {
  const parsed = parseAddress(address)
  return parsed !== undefined && list.some((cidr) => within(cidr, parsed))
}

const formatV4 = (value: bigint): string =>
  [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".")

// RFC 5952: lower case, no leading zeros, the longest run (two groups or more) of zeros as `::`.
const formatV6 = (value: bigint): string => {
  const groups: Array<number> = []
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn))
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart < 0) return hex.join(":")
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`
}

const formatAddress = (family: 4 | 6, value: bigint): string =>
  family === 4 ? formatV4(value) : formatV6(value)

/**
 * The address in canonical form (dotted quad for IPv4 and IPv4-mapped, RFC 5952 for IPv6), or
 * `undefined` when it is not an address. Logs and headers then show one spelling per client.
 *
 * @example
 * Cidr.canonical("::FFFF:192.0.2.1") // "192.0.2.1"
 * Cidr.canonical("2001:DB8:0:0:0:0:0:1") // "2001:db8::1"
 */
export const canonical = (address: string): string | undefined => {
  const cached = canonicalCache.get(address)
  if (cached !== undefined) return cached
  const parsed = parseAddress(address)
  if (parsed === undefined) return undefined
  const text = formatAddress(parsed.family, parsed.value)
  if (canonicalCache.size >= parsedCacheSize) canonicalCache.clear()
  canonicalCache.set(address, text)
  return text
}

const canonicalCache = new Map<string, string>()

/**
 * The family of an address after unmapping (`4` for `::ffff:192.0.2.1`), or `undefined`.
 *
 * @example
 * Cidr.familyOf("2001:db8::1") // 6
 */
export const familyOf = (address: string): 4 | 6 | undefined => parseAddress(address)?.family

/**
 * Writes a network as `address/prefix`.
 *
 * @example
 * Cidr.format(Cidr.parse("10.1.2.3/8")!) // "10.0.0.0/8"
 */
export const format = (cidr: Cidr): string => `${formatAddress(cidr.family, cidr.network)}/${cidr.prefix}`

/**
 * The network of the given size around an address, as text: the key under which rate limits
 * count a whole block of addresses (an IPv6 client usually holds a /64 or more). An address that
 * does not parse is returned unchanged so that it still counts on its own.
 *
 * @example
 * Cidr.aggregate("1.2.3.4", 24, 64) // "1.2.3.0/24"
 * Cidr.aggregate("2001:db8:1:2:3::4", 24, 48) // "2001:db8:1::/48"
 */
export const aggregate = (address: string, v4Prefix: number, v6Prefix: number): string => {
  const parsed = parseAddress(address)
  if (parsed === undefined) return address
  const wanted = parsed.family === 4 ? v4Prefix : v6Prefix
  const prefix = Math.max(0, Math.min(bitsOf(parsed.family), Math.trunc(wanted)))
  return format({ family: parsed.family, network: parsed.value & maskOf(parsed.family, prefix), prefix })
}
