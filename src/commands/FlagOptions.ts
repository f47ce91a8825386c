/**
 * The @effect/cli options of `serve`, `check-config` and `plugins`, made from `ConfigFlags.docs`.
 * Apart from ConfigFlags so that `serve` in the plain form does not import @effect/cli.
 *
 * @example
 * Command.make("check-config", FlagOptions.options, (o) => Serve.loadConfig(o))
 */
import * as Options from "@effect/cli/Options"
import { docs, type FlagDoc, logFormats } from "./ConfigFlags.ts"

const described = (doc: FlagDoc) => `${doc.description} [default: ${doc.default}]`
const text = (doc: FlagDoc) => Options.text(doc.name).pipe(Options.withPseudoName(doc.pseudo ?? "VALUE"), Options.withDescription(described(doc)))
const optionalText = (doc: FlagDoc) => text(doc).pipe(Options.optional)
const repeatedText = (doc: FlagDoc) => text(doc).pipe(Options.repeated)
const flag = (doc: FlagDoc) => Options.boolean(doc.name).pipe(Options.withDescription(described(doc)))

export const options = {
  config: optionalText(docs.config),
  listen: repeatedText(docs.listen),
  listenTls: repeatedText(docs.listenTls),
  hostname: optionalText(docs.hostname),
  tlsCert: optionalText(docs.tlsCert),
  tlsKey: optionalText(docs.tlsKey),
  users: optionalText(docs.users),
  auth: repeatedText(docs.auth),
  oauthJwks: optionalText(docs.oauthJwks),
  oauthIssuer: optionalText(docs.oauthIssuer),
  oauthAudience: optionalText(docs.oauthAudience),
  allowInsecureAuth: flag(docs.allowInsecureAuth),
  trust: repeatedText(docs.trust),
  maildir: optionalText(docs.maildir),
  maxSize: optionalText(docs.maxSize),
  maxRecipients: optionalText(docs.maxRecipients),
  maxConnectionsPerNetwork: optionalText(docs.maxConnectionsPerNetwork),
  ipv4NetworkPrefix: optionalText(docs.ipv4NetworkPrefix),
  ipv6NetworkPrefix: optionalText(docs.ipv6NetworkPrefix),
  relay: optionalText(docs.relay),
  webhook: optionalText(docs.webhook),
  webhookSecret: optionalText(docs.webhookSecret),
  verify: flag(docs.verify),
  dkimSignKeys: repeatedText(docs.dkimSignKeys),
  dkimTrustedFrom: repeatedText(docs.dkimTrustedFrom),
  dns: repeatedText(docs.dns),
  rateLimit: repeatedText(docs.rateLimit),
  milter: repeatedText(docs.milter),
  hook: repeatedText(docs.hook),
  redis: optionalText(docs.redis),
  policy: optionalText(docs.policy),
  rspamd: optionalText(docs.rspamd),
  proxyProtocol: repeatedText(docs.proxyProtocol),
  spool: optionalText(docs.spool),
  spoolMinFree: optionalText(docs.spoolMinFree),
  admin: optionalText(docs.admin),
  adminTokenFile: optionalText(docs.adminTokenFile),
  otlpEndpoint: optionalText(docs.otlpEndpoint),
  logFormat: Options.choice(docs.logFormat.name, logFormats).pipe(Options.withDescription(described(docs.logFormat)), Options.optional),
  watchConfig: flag(docs.watchConfig),
  capture: optionalText(docs.capture),
  captureSample: optionalText(docs.captureSample),
  captureMaxSize: optionalText(docs.captureMaxSize),
  captureHeadersOnly: flag(docs.captureHeadersOnly)
} satisfies Record<keyof typeof docs, unknown>
