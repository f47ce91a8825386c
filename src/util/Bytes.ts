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

/**
 * An HTTP answer's body, at most `max` bytes: `undefined` as soon as it is longer, the rest
 * never read (a hostile or broken server cannot make us hold more). For plugins that call a
 * service (auth-http, http-hooks, auth-oauth's key set).
 */
export const readCapped = async (response: globalThis.Response, max: number): Promise<Uint8Array | undefined> => {
  const reader = response.body?.getReader()
  if (reader === undefined) return EMPTY
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return concat(chunks)
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => undefined)
      return undefined
    }
    chunks.push(value)
  }
}

/**
 * Whether a message given as a stream or as its chunks (when held in memory) is the chunks: the
 * DKIM signer and mailauth's input take either, and use the chunks without running a stream.
 */
export const isChunks = <S extends object>(message: S | ReadonlyArray<Uint8Array>): message is ReadonlyArray<Uint8Array> =>
  Array.isArray(message)
