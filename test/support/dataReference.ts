/**
 * Reference models of how the bridge normalizes message data, written independently of src/ so
 * that the decoder's unit tests and the end-to-end smuggling tests compare against the same
 * exact expectation rather than fragments.
 *
 * @example
 * reference("a\n.\nb\r\n..c\r\n.\r\nQUIT\r\n") // "a\r\n.\r\nb\r\n.c\r\n"
 */

/**
 * The normalize policy of DATA: split the stream at CRLF only; the first line that is exactly "."
 * ends it; every other line loses one leading dot, and every CR or LF left inside a line (a bare
 * one) becomes CRLF. Throws when the input holds no CRLF "." CRLF.
 */
export const reference = (data: string): string => {
  const lines = data.split("\r\n")
  const end = lines.indexOf(".")
  if (end === -1) throw new Error("reference: no CRLF.CRLF in the test input")
  return lines
    .slice(0, end)
    .map((line) => (line.startsWith(".") ? line.slice(1) : line).replace(/\r|\n/g, "\r\n"))
    .map((line) => `${line}\r\n`)
    .join("")
}

/** The BDAT policy: no dot handling at all, every bare CR or LF becomes CRLF. */
export const referenceBdat = (chunk: string): string => chunk.replace(/\r\n|\r|\n/g, "\r\n")
