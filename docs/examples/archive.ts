/**
 * Cookbook: an archive copy of every message (a BCC to a Maildir). Configure a transport for the
 * archive — `transports: { archive: { type: "maildir", dir: "/var/mail/archive" } }` — and list
 * this plugin: every recipient goes to its usual transport and to the archive. The recipients'
 * own delivery is never held back by it, but an archive that fails counts as a failed copy: the
 * client still gets 250 (saying how many copies went), and the failure is spooled or reported as
 * any partial delivery is (docs/architecture.md).
 *
 * @example
 * plugins: [archive({ transport: "archive" })]
 */
import { Effect, Schema } from "effect"
import { definePlugin } from "smtp-bridge"

export const archive = definePlugin({
  name: "archive",
  options: Schema.Struct({
    /** The archive's transport name. */
    transport: Schema.String,
    /** Where the recipients' own copies go; default the config's default transport (`default`). */
    deliverTo: Schema.optionalWith(Schema.String, { exact: true })
  }),
  make: ({ transport, deliverTo }) => ({
    route: ({ transaction, transports }) =>
      Effect.succeed(
        transports.includes(transport)
          ? [{ transport: deliverTo ?? "default", recipients: transaction.recipients }, { transport, recipients: transaction.recipients }]
          : undefined
      )
  })
})

export default archive
