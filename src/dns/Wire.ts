/**
 * The DNS message format (RFC 1035 §4) for the few record types mail authentication needs:
 * building one query and reading the answer with its TTLs, which `node:dns` does not give for
 * TXT or MX. Pure: bytes in, values out.
 */

export const RRTYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41 } as const
export type RRType = "A" | "AAAA" | "CNAME" | "MX" | "NS" | "PTR" | "TXT"

export const isRRType = (s: string): s is RRType =>
  s === "A" || s === "AAAA" || s === "CNAME" || s === "MX" || s === "NS" || s === "PTR" || s === "TXT"

export type RecordData =
  | { readonly type: "A" | "AAAA" | "CNAME" | "NS" | "PTR"; readonly value: string }
  | { readonly type: "TXT"; readonly value: ReadonlyArray<string> }
  | { readonly type: "MX"; readonly value: { readonly exchange: string; readonly priority: number } }

export interface ResourceRecord {
  readonly name: string
  readonly ttl: number
  readonly data: RecordData
}

export interface Response {
  readonly id: number
  /** RCODE: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED. */
  readonly rcode: number
  readonly truncated: boolean
  readonly question: { readonly name: string; readonly type: number } | undefined
  readonly answers: ReadonlyArray<ResourceRecord>
  /** The SOA minimum of the authority section bounds how long a negative answer is kept (RFC 2308). */
  readonly negativeTtl: number | undefined
}

export class WireError extends Error {
  override readonly name = "WireError"
}

/** Lower case without the root dot: the form names are compared and cached in. */
export const normalizeName = (name: string): string => name.toLowerCase().replace(/\.$/, "")

/** Whether `name` fits RFC 1035's limits (labels of 1..63 octets, 253 characters in all). */
export const validName = (name: string): boolean => {
  const n = normalizeName(name)
  if (n.length === 0 || n.length > 253) return false
  return n.split(".").every((label) => label.length > 0 && new TextEncoder().encode(label).byteLength <= 63)
}

const encoder = new TextEncoder()
const latin1 = new TextDecoder("latin1")
const utf8 = new TextDecoder("utf-8")

/** A recursive query (RD) for `name`/`type` with an EDNS0 OPT record asking for 1232-byte answers. */
export const encodeQuery = (id: number, name: string, type: RRType): Uint8Array => {
  const labels = normalizeName(name).split(".").map((l) => encoder.encode(l))
  const qname = labels.reduce((n, l) => n + 1 + l.byteLength, 1)
  const out = new Uint8Array(12 + qname + 4 + 11)
  const view = new DataView(out.buffer)
  view.setUint16(0, id)
  view.setUint16(2, 0x0100) // RD
  view.setUint16(4, 1) // QDCOUNT
  view.setUint16(10, 1) // ARCOUNT: the OPT record
  let o = 12
  for (const l of labels) {
    out[o++] = l.byteLength
    out.set(l, o)
    o += l.byteLength
  }
  out[o++] = 0
  view.setUint16(o, RRTYPES[type])
  view.setUint16(o + 2, 1) // IN
  o += 4
  out[o] = 0 // root owner
  view.setUint16(o + 1, RRTYPES.OPT)
  view.setUint16(o + 3, 1232) // UDP payload size (the DNS flag day 2020 value)
  return out
}

const readName = (buf: Uint8Array, start: number): { readonly name: string; readonly end: number } => {
  const labels: Array<string> = []
  let o = start
  let end = -1
  // A pointer loop would never end: a name cannot take more jumps than the message has bytes.
  for (let jumps = 0; jumps < 128; jumps++) {
    if (o >= buf.byteLength) throw new WireError("name runs past the message")
    const len = buf[o]!
    if (len === 0) {
      return { name: labels.join("."), end: end < 0 ? o + 1 : end }
    }
    if ((len & 0xc0) === 0xc0) {
      if (o + 1 >= buf.byteLength) throw new WireError("truncated name pointer")
      if (end < 0) end = o + 2
      o = ((len & 0x3f) << 8) | buf[o + 1]!
      continue
    }
    if ((len & 0xc0) !== 0) throw new WireError("unknown label type")
    if (o + 1 + len > buf.byteLength) throw new WireError("label runs past the message")
    labels.push(latin1.decode(buf.subarray(o + 1, o + 1 + len)))
    o += 1 + len
  }
  throw new WireError("too many name pointers")
}

const readData = (buf: Uint8Array, view: DataView, type: number, o: number, len: number): RecordData | undefined => {
  switch (type) {
    case RRTYPES.A:
      if (len !== 4) throw new WireError("A record of wrong length")
      return { type: "A", value: Array.from(buf.subarray(o, o + 4)).join(".") }
    case RRTYPES.AAAA: {
      if (len !== 16) throw new WireError("AAAA record of wrong length")
      const groups: Array<string> = []
      for (let i = 0; i < 16; i += 2) groups.push(view.getUint16(o + i).toString(16))
      return { type: "AAAA", value: compressIpv6(groups) }
    }
    case RRTYPES.CNAME:
    case RRTYPES.NS:
    case RRTYPES.PTR: {
      const t = type === RRTYPES.CNAME ? "CNAME" : type === RRTYPES.NS ? "NS" : "PTR"
      return { type: t, value: readName(buf, o).name }
    }
    case RRTYPES.MX:
      return { type: "MX", value: { priority: view.getUint16(o), exchange: readName(buf, o + 2).name } }
    case RRTYPES.TXT: {
      const strings: Array<string> = []
      let p = o
      while (p < o + len) {
        const n = buf[p]!
        if (p + 1 + n > o + len) throw new WireError("TXT string runs past its record")
        strings.push(utf8.decode(buf.subarray(p + 1, p + 1 + n)))
        p += 1 + n
      }
      return { type: "TXT", value: strings }
    }
    default:
      return undefined
  }
}

// The RFC 5952 text form, as node:dns prints it: the longest run of zero groups becomes "::".
const compressIpv6 = (groups: ReadonlyArray<string>): string => {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === "0") j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  if (best < 0) return groups.join(":")
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`
}

/** Reads a response; throws `WireError` on a malformed message. */
export const decodeResponse = (buf: Uint8Array): Response => {
  if (buf.byteLength < 12) throw new WireError("message shorter than its header")
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const flags = view.getUint16(2)
  if ((flags & 0x8000) === 0) throw new WireError("not a response")
  const counts = [view.getUint16(4), view.getUint16(6), view.getUint16(8)] as const
  let o = 12
  let question: Response["question"]
  for (let i = 0; i < counts[0]; i++) {
    const q = readName(buf, o)
    if (q.end + 4 > buf.byteLength) throw new WireError("truncated question")
    question ??= { name: normalizeName(q.name), type: view.getUint16(q.end) }
    o = q.end + 4
  }
  const answers: Array<ResourceRecord> = []
  let negativeTtl: number | undefined
  for (let section = 1; section <= 2; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const owner = readName(buf, o)
      o = owner.end
      if (o + 10 > buf.byteLength) throw new WireError("truncated record")
      const type = view.getUint16(o)
      const ttl = view.getUint32(o + 4)
      const len = view.getUint16(o + 8)
      o += 10
      if (o + len > buf.byteLength) throw new WireError("record data runs past the message")
      if (section === 1) {
        const data = readData(buf, view, type, o, len)
        if (data !== undefined) answers.push({ name: normalizeName(owner.name), ttl, data })
      } else if (type === RRTYPES.SOA) {
        const mname = readName(buf, o)
        const rname = readName(buf, mname.end)
        const minimum = view.getUint32(rname.end + 16)
        negativeTtl = Math.min(ttl, minimum)
      }
      o += len
    }
  }
  return { id: view.getUint16(0), rcode: flags & 0x000f, truncated: (flags & 0x0200) !== 0, question, answers, negativeTtl }
}
