/**
 * PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's `send-proxy` and
 * `send-proxy-v2` write them: the real client address of a connection that came through a
 * load balancer. Pure: give it the first bytes of a connection.
 *
 * @example
 * ProxyProtocol.parse(new TextEncoder().encode("PROXY TCP4 192.0.2.1 198.51.100.1 51000 25\r\nEHLO x\r\n"))
 * // { _tag: "Ok", source: { address: "192.0.2.1", port: 51000 }, consumed: 44, ... }
 */

import * as Cidr from "../util/Cidr.ts"

export interface Endpoint {
  readonly address: string
  readonly port: number
}

export type Parsed =
  | { readonly _tag: "Incomplete" }
  | { readonly _tag: "Invalid"; readonly reason: string }
  /** `source` is undefined for `PROXY UNKNOWN` and v2 `LOCAL` (health checks): use the socket's own address. */
  | { readonly _tag: "Ok"; readonly source: Endpoint | undefined; readonly destination: Endpoint | undefined; readonly consumed: number }

const v2Signature = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a)
const v1Prefix = "PROXY "
/** RFC-ish bound from the spec: a v1 line is at most 107 bytes with CRLF. */
const v1Max = 107
/** v2 headers with TLVs may be larger, but not unboundedly: refuse what no balancer sends. */
const v2Max = 16 + 4096

const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  const n = Math.min(bytes.length, prefix.length)
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const port = (text: string): number | undefined => {
  if (!/^\d{1,5}$/.test(text)) return undefined
  const n = Number(text)
  return n <= 65535 ? n : undefined
}

const parseV1 = (bytes: Uint8Array): Parsed => {
  const limit = Math.min(bytes.length, v1Max)
  let end = -1
  for (let i = 0; i + 1 < limit; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) {
      end = i
      break
    }
  }
  if (end === -1) return bytes.length >= v1Max ? { _tag: "Invalid", reason: "PROXY v1 line too long" } : { _tag: "Incomplete" }
  const line = new TextDecoder("latin1").decode(bytes.subarray(0, end))
  const parts = line.split(" ")
  if (parts[1] === "UNKNOWN") return { _tag: "Ok", source: undefined, destination: undefined, consumed: end + 2 }
  if (parts.length !== 6 || (parts[1] !== "TCP4" && parts[1] !== "TCP6")) return { _tag: "Invalid", reason: "malformed PROXY v1 line" }
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string]
  // TCP6 addresses come out in canonical form (IPv4-mapped as IPv4), as from a v2 header: one
  // spelling per client for the per-address limit, trust and logs.
  const address = (a: string) =>
    family === "TCP4" ? (ipv4.test(a) ? a : undefined) : a.includes(":") && /^[0-9a-fA-F:.]+$/.test(a) ? Cidr.canonical(a) : undefined
  const sa = address(src)
  const da = address(dst)
  const sp = port(sport)
  const dp = port(dport)
  if (sa === undefined || da === undefined || sp === undefined || dp === undefined) {
    return { _tag: "Invalid", reason: "malformed PROXY v1 addresses" }
  }
  return { _tag: "Ok", source: { address: sa, port: sp }, destination: { address: da, port: dp }, consumed: end + 2 }
}

const v6 = (bytes: Uint8Array, at: number): string => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[at + i]! << 8) | bytes[at + i + 1]!).toString(16))
  const full = groups.join(":")
  // IPv4-mapped addresses come out as plain IPv4, like the socket's own addresses.
  return Cidr.canonical(full) ?? full
}

const parseV2 = (bytes: Uint8Array): Parsed => {
  if (bytes.length < 16) return { _tag: "Incomplete" }
  const versionCommand = bytes[12]!
  if (versionCommand >> 4 !== 2) return { _tag: "Invalid", reason: "unsupported PROXY version" }
  const command = versionCommand & 0x0f
  const length = (bytes[14]! << 8) | bytes[15]!
  if (16 + length > v2Max) return { _tag: "Invalid", reason: "PROXY v2 header too long" }
  if (bytes.length < 16 + length) return { _tag: "Incomplete" }
  const consumed = 16 + length
  if (command === 0x0) return { _tag: "Ok", source: undefined, destination: undefined, consumed }
  if (command !== 0x1) return { _tag: "Invalid", reason: "unknown PROXY v2 command" }
  const family = bytes[13]!
  const at = 16
  switch (family) {
    case 0x11: // TCP over IPv4
    case 0x12: // UDP over IPv4
      if (length < 12) return { _tag: "Invalid", reason: "short PROXY v2 IPv4 block" }
      return {
        _tag: "Ok",
        source: { address: bytes.subarray(at, at + 4).join("."), port: (bytes[at + 8]! << 8) | bytes[at + 9]! },
        destination: { address: bytes.subarray(at + 4, at + 8).join("."), port: (bytes[at + 10]! << 8) | bytes[at + 11]! },
        consumed
      }
    case 0x21: // TCP over IPv6
    case 0x22:
      if (length < 36) return { _tag: "Invalid", reason: "short PROXY v2 IPv6 block" }
      return {
        _tag: "Ok",
        source: { address: v6(bytes, at), port: (bytes[at + 32]! << 8) | bytes[at + 33]! },
        destination: { address: v6(bytes, at + 16), port: (bytes[at + 34]! << 8) | bytes[at + 35]! },
        consumed
      }
    default:
      // UNSPEC or unix sockets: the connection is real but carries no usable address.
      return { _tag: "Ok", source: undefined, destination: undefined, consumed }
  }
}

export const parse = (bytes: Uint8Array): Parsed => {
  if (bytes.length === 0) return { _tag: "Incomplete" }
  if (bytes[0] === 0x0d) {
    return startsWith(bytes, v2Signature)
      ? bytes.length < v2Signature.length ? { _tag: "Incomplete" } : parseV2(bytes)
      : { _tag: "Invalid", reason: "not a PROXY header" }
  }
  const prefix = new TextEncoder().encode(v1Prefix)
  if (!startsWith(bytes, prefix)) return { _tag: "Invalid", reason: "not a PROXY header" }
  return bytes.length < prefix.length ? { _tag: "Incomplete" } : parseV1(bytes)
}
