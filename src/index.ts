/**
 * smtp-bridge's public API, for plugin authors and configuration files.
 *
 * @example
 * // smtp-bridge.config.ts
 * import { defineConfig } from "smtp-bridge"
 * import myPlugin from "./my-plugin.ts"
 * export default defineConfig({ hostname: "mx.example.com", plugins: [myPlugin()] })
 */
export * as Verdict from "./pipeline/Verdict.ts"
export * as Notes from "./pipeline/Notes.ts"
export * as Message from "./pipeline/Message.ts"
export * as Reply from "./protocol/Reply.ts"
export * as Relay from "./pipeline/Relay.ts"
export * as Senders from "./pipeline/Senders.ts"
export * as AddressList from "./protocol/AddressList.ts"
export { decodeOptions, definePlugin, hookNames, PluginError, PluginOptionsError } from "./pipeline/Plugin.ts"
/** Decoding a plugin's options with its `effect/Schema`, the error naming the option. */
export type {
  AuthAttemptContext, AuthContext, AuthResultContext, BodyWriter, ConnectContext, Definition, DataContext, DeliveredContext, DisconnectContext, HeloContext,
  Files, HookName, Hooks, MailFromContext, Made, MessageEdits, Plugin, RcptToContext, RecipientResult, Route, RouteContext, SaslContext, SaslExchange, SaslStep,
  Services
} from "./pipeline/Plugin.ts"
export type { SessionInfo, TlsInfo, TransactionInfo } from "./pipeline/Session.ts"
export type { Envelope, Mailbox, MailParams, RcptParams, Recipient } from "./protocol/Envelope.ts"
export type { DeliveryReport, OutgoingMessage, Transport } from "./transport/Transport.ts"
export { TransportError } from "./transport/Transport.ts"
export * as Cidr from "./util/Cidr.ts"
/** Size (`"25MB"`) and duration (`"5 minutes"`) schemas for plugin options. */
export * as Units from "./util/Units.ts"
export * as RateLimit from "./ratelimit/RateLimit.ts"
export { defineConfig } from "./config/Input.ts"
export type { ConfigInput } from "./config/Input.ts"
export { Dns, DnsError } from "./dns/Dns.ts"
export type { MxRecord, Resolver } from "./dns/Dns.ts"
/** A `Dns` over a fixed zone, to provide the service hooks require in a plugin's unit tests. */
export * as StaticDns from "./dns/Static.ts"
export * as Mailauth from "./mailauth/Mailauth.ts"
export * as Dkim from "./dkim/Dkim.ts"
export * as Metrics from "./observability/Metrics.ts"
/** Client connections (TCP, TLS, unix sockets) for plugins that speak to a service of their own (auth-dovecot, policy servers, milters). */
export * as Connect from "./runtime/Connect.ts"
/** `fetch` with a bounded pool of idle connections, for plugins that call HTTP services while a session waits. */
export * as Fetch from "./runtime/Fetch.ts"
/**
 * A small bounded HTTP/1.1 listener (GET and HEAD, one request per connection, streamed answers)
 * for plugins that let a service they call fetch something back, as http-hooks serves message bodies.
 */
export * as HttpListener from "./runtime/HttpListener.ts"
/** bcrypt off the event loop (Bun's native pool, or worker threads), for password backends. */
export * as Password from "./runtime/Password.ts"
/** What of a URL may appear in a log line or an error (userinfo, query values and http paths hidden). */
export * as Redact from "./util/Redact.ts"
/** Byte helpers, among them `readCapped`: an HTTP answer's body with a size bound, for plugins that call a service. */
export * as Bytes from "./util/Bytes.ts"
/**
 * The webhook's request signature (hex HMAC-SHA256 of `<timestamp>.<body>`, sent as
 * `x-smtp-bridge-signature: v1=<hex>` with `x-smtp-bridge-timestamp`), for plugins that call an
 * HTTP service the same way, so that a receiver verifies both with one routine.
 */
export { sign as signRequest } from "./transport/WebhookSign.ts"
/** A bounded pool of reusable connections, as the relay transports keep theirs. */
export * as Pool from "./transport/smtp/Pool.ts"
/** Asks a relay upstream whether it takes a recipient (MAIL FROM:<>, RCPT, RSET), for recipient verification. */
export * as RecipientProbe from "./transport/smtp/Probe.ts"
export type { RelayTransportConfig } from "./config/Config.ts"
