/**
 * Reference decoders written independently of src/ (latin1 strings: one char per byte), used by
 * the fuzzers to say what the bridge must produce.
 */

/**
 * DATA under either policy: split the stream at CRLF only; the first line that is exactly "."
 * (and followed by CRLF) ends it; every other line loses one leading dot, and every CR or LF left
 * inside a line (a bare one) becomes CRLF. Undefined when the input holds no terminator.
 */
export const referenceData = (input: string): { output: string; rest: string; bare: boolean } | undefined => {
  const lines = input.split("\r\n")
  const end = lines.findIndex((line, i) => line === "." && i < lines.length - 1)
  if (end === -1) return undefined
  const kept = lines.slice(0, end)
  return {
    output: kept.map((line) => `${(line.startsWith(".") ? line.slice(1) : line).replace(/\r|\n/g, "\r\n")}\r\n`).join(""),
    rest: lines.slice(end + 1).join("\r\n"),
    bare: kept.some((line) => /[\r\n]/.test(line))
  }
}

/** BDAT: no dot handling at all, every bare CR or LF becomes CRLF. */
export const referenceBdat = (chunk: string): string => chunk.replace(/\r\n|\r|\n/g, "\r\n")
