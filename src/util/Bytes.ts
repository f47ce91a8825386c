/** Byte helpers shared by the decoders, the message store and the transports. */

const EMPTY = new Uint8Array(0)

/** Joins segments; a single segment is returned as is, without copying. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 0) return EMPTY
  if (parts.length === 1) return parts[0]!
  let length = 0
  for (const p of parts) length += p.byteLength
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}
