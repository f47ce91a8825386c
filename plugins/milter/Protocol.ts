/**
 * The Sendmail milter protocol, version 6, from the MTA's side, as Postfix speaks it (its
 * MILTER_README and libmilter's mfdef.h): frame encoding and decoding, option negotiation, and
 * the milter's answers as values. Pure: no I/O. Hand-written because no kept JavaScript
 * library implements the MTA side of milter.
 *
 * A frame is a 4-byte big-endian length (command byte included), one command byte, then data;
 * strings are NUL-terminated.
 */

/** What the MTA sends (SMFIC_*). */
export const Cmd = {
  OptNeg: "O",
  Macro: "D",
  Connect: "C",
  Helo: "H",
  Mail: "M",
  Rcpt: "R",
  Data: "T",
  Header: "L",
  Eoh: "N",
  Body: "B",
  Eom: "E",
  Abort: "A",
  Quit: "Q"
} as const

/** Actions a milter may ask for (SMFIF_*). */
export const Action = {
  AddHeaders: 0x01,
  ChangeBody: 0x02,
  AddRcpt: 0x04,
  DelRcpt: 0x08,
  ChangeHeaders: 0x10,
  Quarantine: 0x20,
  ChangeFrom: 0x40,
  AddRcptPar: 0x80,
  SetSymList: 0x100
} as const
export const allActions = 0x1ff

/** Protocol steps (SMFIP_*): what the milter does not want sent, or will not answer. */
export const Step = {
  NoConnect: 0x1,
  NoHelo: 0x2,
  NoMail: 0x4,
  NoRcpt: 0x8,
  NoBody: 0x10,
  NoHeaders: 0x20,
  NoEoh: 0x40,
  NrHeader: 0x80,
  NoUnknown: 0x100,
  NoData: 0x200,
  Skip: 0x400,
  RcptRej: 0x800,
  NrConnect: 0x1000,
  NrHelo: 0x2000,
  NrMail: 0x4000,
  NrRcpt: 0x8000,
  NrData: 0x10000,
  NrUnknown: 0x20000,
  NrEoh: 0x40000,
  NrBody: 0x80000,
  HeaderLeadingSpace: 0x100000
} as const
/**
 * The steps the bridge offers: every "do not send" and "no reply" bit, SKIP and the leading
 * space; not RCPT_REJ (a milter only sees recipients the bridge accepted so far) and not the
 * larger data sizes (body chunks stay at 64 KB).
 */
export const offeredSteps = 0x1fffff & ~Step.RcptRej

/** Macro stages of SMFIR_SETSYMLIST (SMFIM_*), in protocol order. */
export const macroStages = ["connect", "helo", "mail", "rcpt", "data", "eom", "eoh"] as const
export type MacroStage = (typeof macroStages)[number]

/** The largest frame accepted from a milter: 64 KB of body plus room (libmilter's MILTER_MAX_DATA_SIZE). */
export const maxFrame = 64 * 1024 + 1024
/** Body chunks sent to a milter (MILTER_CHUNK_SIZE). */
export const chunkSize = 65535

const encoder = new TextEncoder()

/**
 * A NUL-terminated string. A NUL inside (from a client's parameter, say) would end the string
 * early and start another argument in the milter's eyes: it becomes `?`.
 */
export const cstring = (s: string | Uint8Array): Uint8Array => {
  const bytes = typeof s === "string" ? encoder.encode(s.replaceAll("\0", "?")) : s.map((b) => (b === 0 ? 63 : b))
  const out = new Uint8Array(bytes.byteLength + 1)
  out.set(bytes)
  return out
}

export const uint32 = (n: number): Uint8Array => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n >>> 0)
  return out
}

export const uint16 = (n: number): Uint8Array => Uint8Array.of((n >> 8) & 0xff, n & 0xff)

/** One frame: length, command, data. */
export const frame = (cmd: string, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 1
  for (const p of parts) length += p.byteLength
  const out = new Uint8Array(4 + length)
  new DataView(out.buffer).setUint32(0, length)
  out[4] = cmd.charCodeAt(0)
  let at = 5
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** The 5 bytes before a frame's data: a body chunk is then written as it is, never copied. */
export const frameHead = (cmd: string, dataLength: number): Uint8Array => {
  const out = new Uint8Array(5)
  new DataView(out.buffer).setUint32(0, dataLength + 1)
  out[4] = cmd.charCodeAt(0)
  return out
}

/** SMFIC_OPTNEG: version 6, the actions and steps the bridge offers. */
export const optionNegotiation = (): Uint8Array => frame(Cmd.OptNeg, uint32(6), uint32(allActions), uint32(offeredSteps))

/** SMFIC_MACRO for the command `cmd`: name, value pairs. */
export const macros = (cmd: string, pairs: ReadonlyArray<readonly [string, string]>): Uint8Array =>
  frame(Cmd.Macro, encoder.encode(cmd), ...pairs.flatMap(([name, value]) => [cstring(name), cstring(value)]))

export interface Frame {
  readonly cmd: string
  readonly data: Uint8Array
}

/**
 * Frames out of a byte stream. A length above `maxFrame` (or 0) is a protocol error found from
 * the 4 length bytes alone: a hostile milter announcing 4 GB never makes us allocate it.
 */
export const reader = (limit: number = maxFrame) => {
  let buffered: Array<Uint8Array> = []
  let size = 0
  const take = (n: number): Uint8Array => {
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const head = buffered[0]!
      const k = Math.min(head.byteLength, n - at)
      out.set(head.subarray(0, k), at)
      at += k
      if (k === head.byteLength) buffered.shift()
      else buffered[0] = head.subarray(k)
    }
    size -= n
    return out
  }
  const peekLength = (): number => {
    const four = take(4)
    buffered = [four, ...buffered]
    size += 4
    return new DataView(four.buffer).getUint32(0)
  }
  return {
    push: (chunk: Uint8Array): void => {
      buffered.push(chunk)
      size += chunk.byteLength
    },
    /** The next whole frame; `undefined` when more bytes are needed; a string naming a protocol error. */
    next: (): Frame | undefined | string => {
      if (size < 4) return undefined
      const length = peekLength()
      if (length === 0 || length > limit) return `frame of ${length} bytes (the limit is ${limit})`
      if (size < 4 + length) return undefined
      take(4)
      const body = take(length)
      return { cmd: String.fromCharCode(body[0]!), data: body.subarray(1) }
    }
  }
}

export interface Negotiated {
  readonly version: number
  readonly actions: number
  readonly steps: number
  /** The macros the milter asked for per stage (SMFIF_SETSYMLIST), when it did. */
  readonly macros: ReadonlyMap<MacroStage, ReadonlyArray<string>>
}

const decoder = new TextDecoder("utf-8", { fatal: false })

/** Splits NUL-terminated strings; the last one must be terminated. */
export const strings = (data: Uint8Array): ReadonlyArray<string> | undefined => {
  if (data.byteLength === 0 || data[data.byteLength - 1] !== 0) return undefined
  const out: Array<string> = []
  let start = 0
  for (let i = 0; i < data.byteLength; i++) {
    if (data[i] === 0) {
      out.push(decoder.decode(data.subarray(start, i)))
      start = i + 1
    }
  }
  return out
}

/** The milter's SMFIC_OPTNEG answer, or why it is not one we can work with. */
export const parseNegotiation = (f: Frame): Negotiated | string => {
  if (f.cmd !== Cmd.OptNeg) return `expected the option negotiation, got ${JSON.stringify(f.cmd)}`
  if (f.data.byteLength < 12) return "option negotiation shorter than 12 bytes"
  const view = new DataView(f.data.buffer, f.data.byteOffset, f.data.byteLength)
  const version = view.getUint32(0)
  const actions = view.getUint32(4)
  const steps = view.getUint32(8)
  if (version < 2 || version > 6) return `milter protocol version ${version} (2 to 6 are spoken)`
  if ((actions & ~allActions) !== 0) return `actions 0x${actions.toString(16)} beyond those offered`
  if ((steps & ~offeredSteps) !== 0) return `protocol steps 0x${steps.toString(16)} beyond those offered`
  const macros = new Map<MacroStage, ReadonlyArray<string>>()
  let at = 12
  while (at + 4 < f.data.byteLength) {
    const stage = macroStages[view.getUint32(at)]
    const end = f.data.indexOf(0, at + 4)
    if (stage === undefined || end === -1) return "malformed macro list in the option negotiation"
    macros.set(stage, decoder.decode(f.data.subarray(at + 4, end)).split(/[\s,]+/).filter((n) => n !== ""))
    at = end + 1
  }
  return { version, actions, steps, macros }
}

/** A milter's answer (SMFIR_*). */
export type Response =
  | { readonly _tag: "Accept" | "Continue" | "Discard" | "Reject" | "Tempfail" | "Skip" | "Progress" }
  | { readonly _tag: "ReplyCode"; readonly code: number; readonly enhanced: string | undefined; readonly lines: ReadonlyArray<string> }
  | { readonly _tag: "Quarantine"; readonly reason: string }
  | { readonly _tag: "AddHeader"; readonly name: string; readonly value: string }
  | { readonly _tag: "ChangeHeader" | "InsertHeader"; readonly index: number; readonly name: string; readonly value: string }
  | { readonly _tag: "ChangeFrom"; readonly address: string }
  | { readonly _tag: "AddRcpt"; readonly address: string }
  | { readonly _tag: "DelRcpt"; readonly address: string }
  | { readonly _tag: "ReplaceBody"; readonly chunk: Uint8Array }

const simple: Record<string, Response["_tag"]> = {
  a: "Accept",
  c: "Continue",
  d: "Discard",
  r: "Reject",
  t: "Tempfail",
  s: "Skip",
  p: "Progress"
}

/** Lines of a reply a milter may give; more is a protocol error rather than a flood at the client. */
const maxReplyLines = 20

/**
 * `550-5.7.1 first\r\n550 5.7.1 last`: the code must be 4xx or 5xx and the same on every line;
 * the enhanced code, when given, of the same class. `%%` is a literal `%` (sendmail's escaping).
 */
export const parseReplyCode = (text: string): Response | string => {
  const raw = text.split(/\r?\n/).filter((l, i, all) => l !== "" || i < all.length - 1)
  if (raw.length === 0 || raw.length > maxReplyLines) return `reply of ${raw.length} lines`
  let code: number | undefined
  let enhanced: string | undefined
  const lines: Array<string> = []
  for (const [i, line] of raw.entries()) {
    const m = /^([45]\d\d)([ -]?)(?:([45]\.\d{1,3}\.\d{1,3})(?: |$))?(.*)$/.exec(line)
    if (m === null) return `reply line ${JSON.stringify(line.slice(0, 80))} without a 4xx or 5xx code`
    const c = Number(m[1])
    if (code !== undefined && c !== code) return "reply lines with different codes"
    code = c
    if (i === 0) enhanced = m[3]
    if (m[3] !== undefined && m[3][0] !== m[1]![0]) return `reply ${c} with enhanced code ${m[3]}`
    lines.push(m[4]!.replace(/%%/g, "%").replace(/[\x00-\x1f\x7f]/g, " "))
  }
  return { _tag: "ReplyCode", code: code!, enhanced, lines }
}

/** Decodes one answer frame, or says why it is malformed. */
export const parseResponse = (f: Frame): Response | string => {
  const tag = simple[f.cmd]
  if (tag !== undefined) return { _tag: tag } as Response
  const view = new DataView(f.data.buffer, f.data.byteOffset, f.data.byteLength)
  switch (f.cmd) {
    case "y": {
      const s = strings(f.data)
      return s === undefined || s.length !== 1 ? "malformed SMFIR_REPLYCODE" : parseReplyCode(s[0]!)
    }
    case "q": {
      const s = strings(f.data)
      return s === undefined ? "malformed SMFIR_QUARANTINE" : { _tag: "Quarantine", reason: s[0]! }
    }
    case "h": {
      const s = strings(f.data)
      return s === undefined || s.length !== 2 ? "malformed SMFIR_ADDHEADER" : { _tag: "AddHeader", name: s[0]!, value: s[1]! }
    }
    case "m":
    case "i": {
      if (f.data.byteLength < 4) return "malformed header change"
      const s = strings(f.data.subarray(4))
      if (s === undefined || s.length !== 2) return "malformed header change"
      return { _tag: f.cmd === "m" ? "ChangeHeader" : "InsertHeader", index: view.getUint32(0), name: s[0]!, value: s[1]! }
    }
    case "e": {
      const s = strings(f.data)
      return s === undefined || s.length < 1 ? "malformed SMFIR_CHGFROM" : { _tag: "ChangeFrom", address: s[0]! }
    }
    case "+":
    case "2": {
      const s = strings(f.data)
      return s === undefined || s.length < 1 ? "malformed SMFIR_ADDRCPT" : { _tag: "AddRcpt", address: s[0]! }
    }
    case "-": {
      const s = strings(f.data)
      return s === undefined || s.length !== 1 ? "malformed SMFIR_DELRCPT" : { _tag: "DelRcpt", address: s[0]! }
    }
    case "b":
      return { _tag: "ReplaceBody", chunk: f.data }
    default:
      return `unknown answer ${JSON.stringify(f.cmd)}`
  }
}

/** Which action bit a modification needs (a milter may only do what it negotiated). */
export const actionFor = (r: Response): number | undefined => {
  switch (r._tag) {
    case "AddHeader":
      return Action.AddHeaders
    case "ChangeHeader":
    case "InsertHeader":
      return Action.ChangeHeaders | Action.AddHeaders
    case "ChangeFrom":
      return Action.ChangeFrom
    case "AddRcpt":
      return Action.AddRcpt | Action.AddRcptPar
    case "DelRcpt":
      return Action.DelRcpt
    case "ReplaceBody":
      return Action.ChangeBody
    case "Quarantine":
      return Action.Quarantine
    default:
      return undefined
  }
}
