/**
 * DKIM signing (RFC 6376) with relaxed/relaxed canonicalisation, RSA-SHA256 and Ed25519-SHA256
 * (RFC 8463). mailauth verifies these signatures; its dkimSign (7.1) streams the body too, but
 * cannot oversign (list a header name once more than it occurs, so that nobody can add one later,
 * RFC 6376 §8.15): its h= names only the fields present, and no option changes that
 * (docs/mail-authentication.md; test/unit/mailauth/mailauth-signer.test.ts fails when it can).
 *
 * The header is relaxed-canonicalised, so the bridge may fold the value it writes differently
 * from how it was signed: only whitespace at folds differs, which relaxed canonicalisation drops.
 *
 * @example
 * const [value] = yield* Sign.sign({ headers, body: message.stream(message.bodyOffset) }, [{ domain, selector, key }])
 * addHeader("DKIM-Signature", value)
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Bytes from "../util/Bytes.ts"

/** Signed by default: what readers see and what threading uses (mailauth's list, minus Resent-*). */
export const DEFAULT_HEADERS: ReadonlyArray<string> = [
  "From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc", "MIME-Version", "Content-Type",
  "Content-Transfer-Encoding", "Content-ID", "Content-Description", "In-Reply-To", "References", "List-Id",
  "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe", "List-Post", "List-Owner",
  "List-Archive", "BIMI-Selector"
]

/** Oversigned by default: the fields whose later addition would change what a reader trusts. */
export const DEFAULT_OVERSIGN: ReadonlyArray<string> = [
  "From", "Sender", "Reply-To", "Subject", "Date", "To", "Cc", "MIME-Version", "Content-Type", "Message-ID"
]

export interface Key {
  readonly domain: string
  readonly selector: string
  readonly key: Crypto.KeyObject
}

export interface SignOptions {
  readonly headers?: ReadonlyArray<string>
  readonly oversign?: ReadonlyArray<string>
  /** Signature time in seconds since the epoch (t=). */
  readonly time?: number
  /** Lifetime in seconds (x = t + expires); none by default. */
  readonly expires?: number
}

export interface HeaderLine {
  readonly name: string
  /** The field as received, folding and final CRLF included. */
  readonly raw: string
  /** The same as bytes, when known: what is signed then, so that 8-bit bytes are signed as sent. */
  readonly bytes?: Uint8Array
}

// Only SP and HTAB are WSP: `trim()` would also take NBSP (U+00A0, or the byte A0 read as latin1),
// VT and FF, and the signature would not verify on the bytes sent.
const trimWsp = (s: string): string => {
  let start = 0
  let end = s.length
  while (start < end && (s[start] === " " || s[start] === "\t")) start++
  while (end > start && (s[end - 1] === " " || s[end - 1] === "\t")) end--
  return s.slice(start, end)
}

/** RFC 6376 §3.4.2: lower-case name, unfolded value with runs of WSP as one space, trimmed. */
export const relaxedHeader = (name: string, value: string): string =>
  `${trimWsp(name).toLowerCase()}:${trimWsp(value.replace(/\r\n(?=[ \t])/g, "").replace(/[ \t]+/g, " "))}`

/**
 * Bytes as a string of one character per byte. Buffer's latin1, not `TextDecoder("latin1")`: the
 * Encoding Standard makes that label windows-1252, which turns 80-9F into other characters (80
 * into U+20AC), so UTF-8 text such as "€" (E2 82 AC) was hashed as other bytes and its signature
 * failed.
 */
const latin1 = { decode: (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1") }

/**
 * The field as a string of one character per byte (latin1), which the canonicalisation keeps
 * byte for byte: the bytes received when known, else the UTF-8 encoding of `raw`.
 */
const binary = (h: HeaderLine): string => latin1.decode(h.bytes ?? Buffer.from(h.raw, "utf8"))

const valueOf = (field: string): string => field.slice(field.indexOf(":") + 1).replace(/\r\n$/, "")

/**
 * A streaming RFC 6376 §3.4.4 relaxed body canonicaliser feeding a SHA-256: WSP runs become one
 * space, WSP at line ends goes, empty lines at the end go. Bytes are handled as latin1 (see
 * `latin1`) so that every octet passes through unchanged. Fed chunk by chunk, synchronously.
 */
const bodyHasher = (options: { readonly startsAtSeparator?: boolean }) => {
  const hash = Crypto.createHash("sha256")
  let carry = ""
  let emptyLines = 0
  // A stream taken at the header section's end starts with the blank separator line.
  let skip = options.startsAtSeparator === true
  const line = (text: string) => {
    if (skip) {
      skip = false
      if (text === "") return
    }
    const canon = text.replace(/[ \t]+/g, " ").replace(/ $/, "")
    if (canon === "") {
      emptyLines++
      return
    }
    if (emptyLines > 0) hash.update("\r\n".repeat(emptyLines), "latin1")
    emptyLines = 0
    hash.update(`${canon}\r\n`, "latin1")
  }
  return {
    update: (chunk: Uint8Array) => {
      const parts = (carry + latin1.decode(chunk)).split("\r\n")
      carry = parts.pop()!
      for (const p of parts) line(p)
    },
    digest: (): string => {
      if (carry !== "") line(carry)
      return hash.digest("base64")
    }
  }
}

/** The relaxed body hash (`bh=`) of a body given as a stream. */
export const bodyHash = <E>(
  body: Stream.Stream<Uint8Array, E>,
  options: { readonly startsAtSeparator?: boolean } = {}
): Effect.Effect<string, E> =>
  Effect.suspend(() => {
    const hasher = bodyHasher(options)
    return Effect.map(Stream.runForEach(body, (chunk) => Effect.sync(() => hasher.update(chunk))), () => hasher.digest())
  })

/**
 * The same hash of a body held in memory, without running a stream (a stream run costs ~100 µs
 * even for one chunk: a quarter of what a small message's whole session costs).
 */
export const bodyHashOf = (
  chunks: ReadonlyArray<Uint8Array>,
  options: { readonly startsAtSeparator?: boolean } = {}
): string => {
  const hasher = bodyHasher(options)
  for (const chunk of chunks) hasher.update(chunk)
  return hasher.digest()
}

/** The `h=` list: each configured name as often as it occurs, once more when oversigned. */
export const signedNames = (
  headers: ReadonlyArray<HeaderLine>,
  list: ReadonlyArray<string>,
  oversign: ReadonlyArray<string>
): ReadonlyArray<string> => {
  // Counted once (this runs for every signed message; a name per configured entry was a pass over
  // the header fields each).
  const counts = new Map<string, number>()
  for (const h of headers) {
    const lower = h.name.toLowerCase()
    counts.set(lower, (counts.get(lower) ?? 0) + 1)
  }
  const over = new Set(oversign.map((n) => n.toLowerCase()))
  const seen = new Set<string>()
  const out: Array<string> = []
  for (const name of list) {
    const lower = name.toLowerCase()
    if (seen.has(lower)) continue
    seen.add(lower)
    const count = counts.get(lower) ?? 0
    for (let i = 0; i < count + (over.has(lower) && count > 0 ? 1 : 0); i++) out.push(name)
  }
  return out
}

/**
 * The canonical header block hashed for `names` (RFC 6376 §5.4.2): each name takes the next
 * unused instance from the bottom; a name with none left (an oversigned one) adds nothing. One
 * character per byte (latin1), so 8-bit fields are hashed as they were received.
 */
export const headerBlock = (headers: ReadonlyArray<HeaderLine>, names: ReadonlyArray<string>): string => {
  const used = new Set<number>()
  const lowered = headers.map((h) => h.name.toLowerCase())
  let out = ""
  for (const name of names) {
    const lower = name.toLowerCase()
    for (let i = headers.length - 1; i >= 0; i--) {
      if (used.has(i) || lowered[i] !== lower) continue
      used.add(i)
      out += relaxedHeader(headers[i]!.name, valueOf(binary(headers[i]!))) + "\r\n"
      break
    }
  }
  return out
}

/** What is signed for one key, given the body hash: the tags (ending `b=`) and the signed bytes. */
const toSign = (headers: ReadonlyArray<HeaderLine>, bh: string, key: Key, options: SignOptions) => {
  const ed25519 = key.key.asymmetricKeyType === "ed25519"
  const names = signedNames(headers, options.headers ?? DEFAULT_HEADERS, options.oversign ?? DEFAULT_OVERSIGN)
  const time = options.time ?? Math.floor(Date.now() / 1000)
  const tags = [
    "v=1",
    `a=${ed25519 ? "ed25519-sha256" : "rsa-sha256"}`,
    "c=relaxed/relaxed",
    `d=${key.domain}`,
    `s=${key.selector}`,
    `t=${time}`,
    ...(options.expires !== undefined ? [`x=${time + options.expires}`] : []),
    `h=${names.join(":")}`,
    `bh=${bh}`,
    "b="
  ]
  const unsigned = tags.join("; ")
  // Both parts are one character per byte: the fields as received, the signature as UTF-8.
  const data = Buffer.from(headerBlock(headers, names) + latin1.decode(Buffer.from(relaxedHeader("DKIM-Signature", unsigned), "utf8")), "latin1")
  // RFC 8463 §3: Ed25519 signs the SHA-256 digest of the data, RSA signs the data with SHA-256.
  return ed25519
    ? { unsigned, algorithm: null, data: Crypto.createHash("sha256").update(data).digest() }
    : { unsigned, algorithm: "sha256", data }
}

/** The DKIM-Signature value for one key, given the body hash: tags, then `b=`. */
export const signatureValue = (
  headers: ReadonlyArray<HeaderLine>,
  bh: string,
  key: Key,
  options: SignOptions = {}
): string => {
  const { algorithm, data, unsigned } = toSign(headers, bh, key, options)
  return unsigned + Crypto.sign(algorithm, data, key.key).toString("base64")
}

/**
 * `signatureValue` with the private-key operation given to the runtime's thread pool (node:crypto's
 * callback form): an RSA-2048 signature is ~1 ms of CPU, which on the event loop held every other
 * session for as long (`--dkim-sign` with RSA ran at 55 % of the plain throughput). Bun and Node
 * sign on their pool; Deno signs on the calling thread, as the synchronous form does.
 */
const signatureValueOffLoop = (headers: ReadonlyArray<HeaderLine>, bh: string, key: Key, options: SignOptions): Effect.Effect<string> =>
  Effect.suspend(() => {
    const { algorithm, data, unsigned } = toSign(headers, bh, key, options)
    return Effect.async<string>((resume) => {
      Crypto.sign(algorithm, data, key.key, (error, signature) =>
        resume(error === null ? Effect.succeed(unsigned + signature.toString("base64")) : Effect.die(error)))
    })
  })


/** Signs with every key (dual signing: one DKIM-Signature each), hashing the body once. */
export const sign = <E>(
  message: {
    readonly headers: ReadonlyArray<HeaderLine>
    /**
     * From the end of the header fields: the blank separator line, then the body; as a stream, or
     * as chunks when it is held in memory.
     */
    readonly body: Stream.Stream<Uint8Array, E> | ReadonlyArray<Uint8Array>
  },
  keys: ReadonlyArray<Key>,
  options: SignOptions = {}
): Effect.Effect<ReadonlyArray<string>, E> => {
  const body = message.body
  return Effect.flatMap(
    Bytes.isChunks(body)
      ? Effect.sync(() => bodyHashOf(body, { startsAtSeparator: true }))
      : bodyHash(body, { startsAtSeparator: true }),
    (bh) => Effect.forEach(keys, (key) => signatureValueOffLoop(message.headers, bh, key, options))
  )
}
