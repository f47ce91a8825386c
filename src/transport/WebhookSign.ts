/**
 * The webhook signature, apart from the transport (`Webhook.ts`): the public API exports it for
 * receivers' tests and plugins, and importing the transport would load @effect/platform's HTTP
 * client, some 10 ms of start-up under Bun for configs without a webhook (issue 16).
 *
 * @example
 * const header = `v1=${WebhookSign.sign("s3cret", "1700000000", body)}`
 */
import { createHmac } from "node:crypto"

/** The signature the receiver recomputes: hex HMAC-SHA256 of `<timestamp>.<body>`. */
export const sign = (secret: string, timestamp: string, body: Uint8Array): string =>
  createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex")
