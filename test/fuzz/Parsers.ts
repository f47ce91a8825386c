/**
 * In-process fuzzing of the pure protocol parsers, each against a reference written
 * independently of src/ (the simplest correct statement of the rule, too slow or too
 * allocation-happy for the bridge itself) or against properties every answer must have.
 * A target returns undefined when the input passed, or a description of what broke.
 */
import * as Address from "../../src/protocol/Address.ts"
import * as Command from "../../src/protocol/Command.ts"
import * as DataDecoder from "../../src/protocol/DataDecoder.ts"
import * as LineDecoder from "../../src/protocol/LineDecoder.ts"
import * as LineEndings from "../../src/protocol/LineEndings.ts"
import * as ProxyProtocol from "../../src/protocol/ProxyProtocol.ts"
import * as Reply from "../../src/protocol/Reply.ts"
import * as Sasl from "../../src/protocol/Sasl.ts"
import * as Xtext from "../../src/protocol/Xtext.ts"
import * as Random from "./Random.ts"
import { referenceBdat, referenceData } from "../support/dataReference.ts"
import { session } from "./Session.ts"

export type Target = (r: Random.Random) => string | undefined

const fromLatin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)
const toLatin1 = (parts: ReadonlyArray<Uint8Array>): string => parts.map((p) => String.fromCharCode(...p)).join("")
const show = (s: string): string => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}...(${s.length})` : s)

const dataPieces = ["Subject: x\r\n", "\r\n", ".", "..", "\r\n.\r\n", "\r\n.", "\n.\n", "\r.\r\n", ".\r\n", "text", "\r\n\r\n"]

const data: Target = (r) => {
  const input = Random.latin1(r, dataPieces, r.int(40)) + (r.chance(0.8) ? "\r\n.\r\n" + Random.latin1(r, ["QUIT\r\n"], r.int(3)) : "")
  const expected = referenceData(input)
  const decoder = DataDecoder.make({ bareLineEndings: r.chance(0.5) ? "reject" : "normalize" })
  const out: Array<Uint8Array> = []
  let result: DataDecoder.DataResult | undefined
  const pieces = Random.chunks(r, fromLatin1(input))
  for (let i = 0; i < pieces.length; i++) {
    result = decoder.decode(pieces[i]!)
    out.push(...result.output)
    if (result.done) {
      const rest = toLatin1([result.rest, ...pieces.slice(i + 1)])
      if (expected === undefined) return `DataDecoder ended data with no CRLF.CRLF in ${show(input)}`
      if (toLatin1(out) !== expected.output) return `DataDecoder output ${show(toLatin1(out))}, reference ${show(expected.output)} for ${show(input)}`
      if (rest !== expected.rest) return `DataDecoder rest ${show(rest)}, reference ${show(expected.rest)} for ${show(input)}`
      if (result.bare !== expected.bare) return `DataDecoder bare=${result.bare}, reference ${expected.bare} for ${show(input)}`
      return undefined
    }
  }
  if (expected !== undefined) return `DataDecoder missed the CRLF.CRLF in ${show(input)}`
  if (/\r(?!\n)|(?<!\r)\n/.test(toLatin1(out).replace(/\r$/, ""))) return `DataDecoder wrote a bare CR or LF for ${show(input)}`
  return undefined
}

const bdat: Target = (r) => {
  const input = Random.latin1(r, dataPieces, r.int(30))
  const normalizer = LineEndings.make("normalize")
  const out: Array<Uint8Array> = []
  let bare = false
  for (const piece of Random.chunks(r, fromLatin1(input))) {
    const n = normalizer.push(piece)
    out.push(n.output)
    bare ||= n.bare
  }
  const end = normalizer.end()
  out.push(end.output)
  bare ||= end.bare
  const expected = referenceBdat(input)
  if (toLatin1(out) !== expected) return `LineEndings output ${show(toLatin1(out))}, reference ${show(expected)} for ${show(input)}`
  if (bare !== /\r(?!\n)|(?<!\r)\n/.test(input)) return `LineEndings bare=${bare} for ${show(input)}`
  return undefined
}

const text = new TextDecoder("utf-8", { ignoreBOM: true })

/** Command mode: LF ends a line (one CR before it is dropped); a line longer than `max` with its LF is TooLong. */
const referenceLines = (input: Uint8Array, max: number): Array<string> => {
  const events: Array<string> = []
  let i = 0
  while (i < input.length) {
    const lf = input.indexOf(0x0a, i)
    if (lf === -1) {
      if (input.length - i + 1 > max) events.push("TooLong")
      break
    }
    if (lf + 1 - i > max) events.push("TooLong")
    else {
      const end = lf > i && input[lf - 1] === 0x0d ? lf - 1 : lf
      events.push(`Line:${text.decode(input.subarray(i, end))}`)
    }
    i = lf + 1
  }
  return events
}

const lines: Target = (r) => {
  const max = r.pick([8, 64, 512])
  const input = fromLatin1(Random.latin1(r, ["NOOP", "MAIL FROM:<a@b>", "\r\n", "\n", "x".repeat(70)], r.int(30)))
  const decoder = LineDecoder.make(max)
  const events: Array<string> = []
  for (const piece of Random.chunks(r, input)) {
    decoder.push(piece)
    for (let e = decoder.next(); e !== undefined; e = decoder.next()) events.push(e._tag === "Line" ? `Line:${e.line}` : "TooLong")
  }
  const expected = referenceLines(input, max)
  if (JSON.stringify(events) !== JSON.stringify(expected)) {
    return `LineDecoder(${max}) events ${show(JSON.stringify(events))}, reference ${show(JSON.stringify(expected))}`
  }
  return undefined
}

const verbs = ["EHLO ", "HELO ", "MAIL FROM:", "RCPT TO:", "DATA", "BDAT ", "RSET", "NOOP ", "QUIT", "VRFY ", "AUTH ", "STARTTLS", "HELP "]
const args = ["<a@b.example>", "<>", "<\"q u\"@b>", "<postmaster>", " SIZE=100", " BODY=8BITMIME", " SMTPUTF8", " NOTIFY=SUCCESS,FAILURE", " ORCPT=rfc822;a+2Bb@c", " RET=HDRS", " ENVID=x+41", " AUTH=<>", " LAST", "PLAIN AHVAcA==", "@x,@y:a@b", "<a@[127.0.0.1]>", "<a@[IPv6:::1]>", "=", "<"]

const wellFormed = (reply: Reply.Reply): string | undefined => {
  const line = Reply.format(reply)
  if (!/^[2-5]\d\d[ -]/.test(line)) return `malformed reply ${show(line)}`
  if (reply.enhanced !== undefined && reply.enhanced[0] !== String(reply.code)[0]) return `enhanced code ${reply.enhanced} does not match ${reply.code}`
  for (const l of line.split("\r\n").filter((l) => l !== "")) {
    if (Buffer.byteLength(l) > 512) return `reply line of ${Buffer.byteLength(l)} octets (RFC 5321 4.5.3.1.5 allows 512)`
    if (/[^\x20-\x7e]/.test(l)) return `reply with a byte outside printable ASCII: ${show(l)}`
  }
  return undefined
}

/** Parsing time per byte of the slowest of three runs, in microseconds (GC noise cut by the minimum). */
const microsPerByte = (line: string, smtputf8: boolean): number => {
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    for (let j = 0; j < 5; j++) Command.parse(line, { smtputf8 })
    best = Math.min(best, (performance.now() - started) / 5)
  }
  return (best * 1000) / Math.max(line.length, 1)
}

const command: Target = (r) => {
  const line = r.pick(verbs) + Random.latin1(r, args, r.int(8))
  const smtputf8 = r.chance(0.5)
  const started = performance.now()
  let result: Command.ParseResult
  try {
    result = Command.parse(line, { smtputf8 })
  } catch (error) {
    return `Command.parse threw ${String(error)} for ${show(line)}`
  }
  const took = performance.now() - started
  if (result._tag === "Error") {
    const bad = wellFormed(result.reply)
    if (bad !== undefined) return `Command.parse: ${bad} for ${show(line)}`
  }
  // A linear parser costs well under 0.5 us a byte; the quadratic trim cost 2 us a byte at 4 KB.
  if (took > 1 && line.length > 1000) {
    const cost = microsPerByte(line, smtputf8)
    if (cost > 0.5) return `Command.parse costs ${cost.toFixed(2)} us/byte on a ${line.length}-byte line ${show(line)}`
  }
  return undefined
}

const path: Target = (r) => {
  const text = Random.latin1(r, ["<", ">", "@", "a", "b.example", "\"", "\\", ".", "[127.0.0.1]", "postmaster", "@x,@y:", "é"], r.int(12))
  const options = { smtputf8: r.chance(0.5), allowNull: r.chance(0.5), allowPostmaster: r.chance(0.5) }
  let parsed: Address.ParsedPath
  try {
    parsed = Address.parsePath(text, options)
  } catch (error) {
    return `Address.parsePath threw ${String(error)} for ${show(text)}`
  }
  if (parsed._tag === "Ok" && parsed.mailbox !== null) {
    const again = Address.parsePath(Address.formatPath(parsed.mailbox), options)
    if (again._tag !== "Ok" || again.mailbox?.address !== parsed.mailbox.address) {
      return `Address: ${show(text)} parsed as ${show(parsed.mailbox.address)}, which does not parse back the same`
    }
  }
  return undefined
}

const base64: Target = (r) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  let input = r.chance(0.5)
    ? Buffer.from(Random.bytes(r, 30)).toString("base64")
    : Array.from({ length: r.int(12) }, () => r.pick([...alphabet, "=", " ", "-", "_", "\n"])).join("")
  if (r.chance(0.3) && input.length > 0) {
    const i = r.int(input.length)
    input = input.slice(0, i) + r.pick([...alphabet, "="]) + input.slice(i + 1)
  }
  // Strict RFC 4648: canonical text only, so the decoded bytes encode back to the very same text.
  const decoded = Buffer.from(input, "base64")
  const canonical = /^[A-Za-z0-9+/]*={0,2}$/.test(input) && input.length % 4 === 0 && decoded.toString("base64") === input
  const ours = Sasl.decodeBase64(input)
  if ((ours !== undefined) !== canonical) return `Sasl.decodeBase64 ${ours === undefined ? "refused" : "accepted"} ${show(input)}`
  if (ours !== undefined && !Buffer.from(ours).equals(decoded)) return `Sasl.decodeBase64 decoded ${show(input)} wrongly`
  return undefined
}

const xtext: Target = (r) => {
  const input = Random.latin1(r, ["a", "+", "=", " ", "é", "\u212a", "x"], r.int(10))
  const encoded = Xtext.encode(input)
  if (!Xtext.isXtext(encoded) || Xtext.decode(encoded) !== input) return `Xtext round trip failed for ${show(input)}`
  return undefined
}

const proxy: Target = (r) => {
  const header = r.chance(0.5)
    ? fromLatin1(`PROXY ${Random.latin1(r, ["TCP4 ", "TCP6 ", "UNKNOWN", "127.0.0.1 ", "::1 ", "25 ", "65536 ", "\r\n"], r.int(8))}`)
    : Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, ...Random.bytes(r, 60)])
  try {
    const parsed = ProxyProtocol.parse(header)
    if (parsed._tag === "Ok" && (parsed.consumed > header.length || parsed.consumed <= 0)) return `ProxyProtocol consumed ${parsed.consumed} of ${header.length}`
  } catch (error) {
    return `ProxyProtocol.parse threw ${String(error)}`
  }
  return undefined
}

export const targets: Readonly<Record<string, Target>> = { data, bdat, lines, command, path, base64, xtext, proxy, session }
