import * as Data from "effect/Data"

/**
 * A spool operation failed. `Write`: the message could not be made durable (the client must get
 * a 4xx); `Read`: the spool directory or a file in it could not be read; `Corrupt`: a state file
 * is not what this version wrote (it is moved to `corrupt/` rather than deleted).
 */
export class SpoolError extends Data.TaggedError("SpoolError")<{
  readonly reason: "Write" | "Read" | "Corrupt"
  readonly message: string
  /** The file concerned, when there is one. */
  readonly path?: string | undefined
}> {}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

export const fromUnknown = (reason: SpoolError["reason"], path: string, action: string) => (error: unknown) =>
  new SpoolError({ reason, path, message: `Spool: could not ${action} ${path}: ${messageOf(error)}` })
