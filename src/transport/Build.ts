/** Builds every configured transport by name, in the server's scope (pools close with it). */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { TransportConfig } from "../config/Config.ts"
import * as Maildir from "./Maildir.ts"
import * as SmtpRelay from "./smtp/SmtpRelay.ts"
import type { Transport } from "./Transport.ts"
import * as Redact from "../util/Redact.ts"


const one = (name: string, config: TransportConfig, hostname: string): Effect.Effect<Transport, { readonly message: string }, Scope.Scope> => {
  switch (config.type) {
    case "maildir":
      return Effect.map(Maildir.make({ dir: config.dir }), (t) => ({ ...t, name }))
    case "webhook":
      // Imported only for a webhook: it loads @effect/platform's HTTP client (see WebhookSign.ts).
      return Effect.flatMap(Effect.promise(() => import("./Webhook.ts")), (Webhook) =>
        Webhook.make({
          name,
          url: config.url,
          secret: config.secret,
          format: config.format,
          timeout: config.timeout,
          headers: config.headers
        }))
    case "smtp":
    case "lmtp":
      return SmtpRelay.fromConfig(name, config, { helo: hostname })
  }
}

export const make = (
  transports: Readonly<Record<string, TransportConfig>>,
  /** The bridge's name, used in EHLO to upstreams. */
  hostname: string
): Effect.Effect<ReadonlyMap<string, Transport>, { readonly message: string }, Scope.Scope> =>
  Effect.map(
    Effect.forEach(Object.entries(transports), ([name, config]) =>
      Effect.map(
        Effect.mapError(one(name, config, hostname), (e) => ({ message: `transport ${name}: ${e.message}` })),
        (t) => [name, t] as const
      )),
    (entries) => new Map(entries)
  )

/** One line per transport for the start-up summary (credentials never shown). */
export const describe = (transports: Readonly<Record<string, TransportConfig>>): string =>
  Object.entries(transports).map(([name, t]) =>
    `${name}=${t.type === "maildir" ? `maildir ${t.dir}` : `${t.type} ${Redact.url(t.url)}`}`
  ).join(", ")
