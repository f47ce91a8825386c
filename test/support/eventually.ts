/**
 * Polling instead of sleeping: a test that waits a fixed time for something to happen fails
 * when the machine is slow and wastes time when it is fast. `until` checks the condition every
 * few milliseconds and fails with the caller's description (and the last error) at the deadline.
 */
export const until = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  options: { readonly timeout?: number; readonly interval?: number } = {}
): Promise<A> => {
  const deadline = Date.now() + (options.timeout ?? 10_000)
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
      last = undefined
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) {
      const cause = last instanceof Error ? `: ${last.message}` : ""
      throw new Error(`timed out waiting for ${what}${cause}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.interval ?? 20))
  }
}
