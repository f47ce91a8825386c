/**
 * Cookbook: refuse messages that carry dangerous attachment types (554 5.7.1), by file name
 * extension or content type. The MIME structure is parsed by postal-mime, a kept parser (nested
 * multiparts, encoded file names as RFC 2231 and RFC 2047 write them), not by hand. Only messages
 * up to `maxSize` are parsed (the bridge's own size limit bounds them anyway).
 *
 * @example
 * plugins: [attachments({ extensions: ["exe", "js", "vbs"] })]
 */
import { Effect, Schema } from "effect"
import PostalMime from "postal-mime"
import { definePlugin, Message, PluginError, Verdict } from "smtp-bridge"

/** Types a mail client runs or installs with one click. */
export const defaultExtensions = ["exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "hta", "msi", "jar", "ps1", "lnk", "iso", "img"]

const extension = (name: string): string => {
  const dot = name.lastIndexOf(".")
  return dot < 0 ? "" : name.slice(dot + 1).trim().toLowerCase()
}

export const attachments = definePlugin({
  name: "attachments",
  options: Schema.Struct({
    extensions: Schema.optionalWith(Schema.Array(Schema.String), { exact: true }),
    contentTypes: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
  }),
  make: ({ extensions, contentTypes }) => {
    const refused = new Set((extensions ?? defaultExtensions).map((e) => e.replace(/^\./, "").toLowerCase()))
    const types = new Set((contentTypes ?? ["application/x-msdownload", "application/x-msdos-program", "application/hta"]).map((t) => t.toLowerCase()))
    return {
      data: Effect.fnUntraced(function*({ message }) {
        const bytes = yield* Message.collect(message.stream()).pipe(
          Effect.mapError((e) => new PluginError({ reason: "Internal", message: `cannot read the message: ${e.message}` }))
        )
        const parsed = yield* Effect.tryPromise({
          try: () => PostalMime.parse(bytes),
          catch: (e) => new PluginError({ reason: "BadResponse", message: `cannot parse the message: ${e instanceof Error ? e.message : String(e)}` })
        })
        for (const a of parsed.attachments) {
          const name = a.filename ?? ""
          if (refused.has(extension(name)) || types.has(a.mimeType.toLowerCase())) {
            return Verdict.reject(`Attachment type not allowed: ${name || a.mimeType}`, { code: 554, enhanced: "5.7.1" })
          }
        }
        return Verdict.Continue
      })
    }
  }
})

export default attachments
