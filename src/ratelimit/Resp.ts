/**
 * RESP2, the Redis wire protocol, without I/O: commands out as arrays of bulk strings, replies in
 * through an incremental decoder that survives any split of the byte stream.
 *
 * @example
 * const decoder = Resp.decoder()
 * decoder.push(new TextEncoder().encode("+OK\r\n:42\r"))
 * decoder.next() // { _tag: "Simple", value: "OK" }
 * decoder.next() // undefined: the integer is not complete yet
 */
import * as Bytes from "../util/Bytes.ts"

export type Value =
  | { readonly _tag: "Simple"; readonly value: string }
  | { readonly _tag: "Error"; readonly value: string }
  | { readonly _tag: "Integer"; readonly value: number }
  | { readonly _tag: "Bulk"; readonly value: string | null }
  | { readonly _tag: "Array"; readonly value: ReadonlyArray<Value> | null }

const encoder = new TextEncoder()
const textDecoder = new TextDecoder()

/**
 * Encodes a command. Arguments are bulk strings with byte lengths, so keys may hold any
 * character, CR and LF included, without breaking the framing.
 *
 * @example
 * Resp.encode(["GET", "k"]) // "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" as bytes
 */
export const encode = (args: ReadonlyArray<string | number>): Uint8Array => {
  const parts = args.map((a) => encoder.encode(String(a)))
  let head = `*${parts.length}\r\n`
  const chunks: Array<Uint8Array> = []
  for (const part of parts) {
    chunks.push(encoder.encode(`${head}$${part.byteLength}\r\n`), part)
    head = "\r\n"
  }
  chunks.push(encoder.encode("\r\n"))
  return Bytes.concat(chunks)
}

/** Thrown by the decoder when the peer is not speaking RESP2; the connection is then unusable. */
export class ProtocolViolation extends Error {}

/** A guard against a peer that announces absurd sizes; our replies are small. */
const maxBulk = 16 * 1024 * 1024

export interface Decoder {
  readonly push: (chunk: Uint8Array) => void
  /** The next complete reply, or `undefined` until more bytes arrive. Throws `ProtocolViolation`. */
  readonly next: () => Value | undefined
}

export const decoder = (): Decoder => {
  let buffer = new Uint8Array(0)
  let offset = 0

  const push = (chunk: Uint8Array) => {
    const rest = buffer.subarray(offset)
    const merged = new Uint8Array(rest.byteLength + chunk.byteLength)
    merged.set(rest, 0)
    merged.set(chunk, rest.byteLength)
    buffer = merged
    offset = 0
  }

  // Each reader returns the value and the position after it, or undefined when incomplete.
  const line = (at: number): { readonly text: string; readonly end: number } | undefined => {
    for (let i = at; i + 1 < buffer.byteLength; i++) {
      if (buffer[i] === 13 && buffer[i + 1] === 10) return { text: textDecoder.decode(buffer.subarray(at, i)), end: i + 2 }
    }
    return undefined
  }

  const integer = (text: string): number => {
    if (!/^-?\d+$/.test(text)) throw new ProtocolViolation(`expected an integer, got ${JSON.stringify(text.slice(0, 40))}`)
    return Number(text)
  }

  const read = (at: number): { readonly value: Value; readonly end: number } | undefined => {
    if (at >= buffer.byteLength) return undefined
    const type = buffer[at]
    const header = line(at + 1)
    if (header === undefined) return undefined
    switch (type) {
      case 43: // +
        return { value: { _tag: "Simple", value: header.text }, end: header.end }
      case 45: // -
        return { value: { _tag: "Error", value: header.text }, end: header.end }
      case 58: // :
        return { value: { _tag: "Integer", value: integer(header.text) }, end: header.end }
      case 36: { // $
        const length = integer(header.text)
        if (length < 0) return { value: { _tag: "Bulk", value: null }, end: header.end }
        if (length > maxBulk) throw new ProtocolViolation(`bulk string of ${length} bytes`)
        if (header.end + length + 2 > buffer.byteLength) return undefined
        const value = textDecoder.decode(buffer.subarray(header.end, header.end + length))
        return { value: { _tag: "Bulk", value }, end: header.end + length + 2 }
      }
      case 42: { // *
        const count = integer(header.text)
        if (count < 0) return { value: { _tag: "Array", value: null }, end: header.end }
        const items: Array<Value> = []
        let end = header.end
        for (let i = 0; i < count; i++) {
          const item = read(end)
          if (item === undefined) return undefined
          items.push(item.value)
          end = item.end
        }
        return { value: { _tag: "Array", value: items }, end }
      }
      default:
        throw new ProtocolViolation(`unexpected reply type byte ${type}`)
    }
  }

  const next = (): Value | undefined => {
    const result = read(offset)
    if (result === undefined) return undefined
    offset = result.end
    return result.value
  }

  return { push, next }
}
