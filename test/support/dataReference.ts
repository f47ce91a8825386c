/**
 * Reference models of how the bridge normalizes message data, written independently of src/ so
 * that the decoder's unit tests and the end-to-end smuggling tests compare against the same
 * exact expectation rather than fragments.
 *
 * @example
 * reference("a\n.\nb\r\n..c\r\n.\r\nQUIT\r\n") // "a\r\n.\r\nb\r\n.c\r\n"
 */

/**
 * DATA under either policy: split the stream at CRLF only; the first line that is exactly "."
 * and followed by CRLF ends it; every other line loses one leading dot, and every CR or LF left
 * inside a line (a bare one) becomes CRLF. Gives the output, the bytes after the terminator and
 * whether the message held a bare CR or LF; undefined when the input holds no terminator.
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

/** The normalized message of `data` (see `referenceData`); throws when it holds no CRLF "." CRLF. */
export const reference = (data: string): string => {
  const result = referenceData(data)
  if (result === undefined) throw new Error("reference: no CRLF.CRLF in the test input")
  return result.output
}

/** The BDAT policy: no dot handling at all, every bare CR or LF becomes CRLF. */
export const referenceBdat = (chunk: string): string => chunk.replace(/\r\n|\r|\n/g, "\r\n")
