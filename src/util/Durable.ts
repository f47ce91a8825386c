/** Durability helpers for the Maildir transport and the spool. */
import * as Fs from "node:fs/promises"

// Platforms without directory fsync (Windows, some network file systems) report these; the
// rename is then as durable as the platform allows.
const unsupportedDirSync = new Set(["EINVAL", "ENOTSUP", "EISDIR", "EPERM", "EBADF", "EACCES"])

/** fsyncs a directory so that a rename into it survives a crash or power loss. */
export const syncDirectory = async (path: string): Promise<void> => {
  let handle: Fs.FileHandle | undefined
  try {
    handle = await Fs.open(path, "r")
    await handle.sync()
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    if (typeof code !== "string" || !unsupportedDirSync.has(code)) throw error
  } finally {
    await handle?.close().catch(() => undefined)
  }
}
