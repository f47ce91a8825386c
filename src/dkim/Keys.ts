/**
 * DKIM keys: generating a key pair and the TXT record that publishes it (RFC 6376 §3.6.1 for
 * RSA, RFC 8463 for Ed25519), and reading a private key from PEM.
 *
 * @example
 * const { privateKeyPem, dnsRecordName, txtValue } = Keys.keygen({ algorithm: "ed25519", domain: "example.org", selector: "s1" })
 * // dnsRecordName: "s1._domainkey.example.org", txtValue: "v=DKIM1; k=ed25519; p=..."
 */
import * as Crypto from "node:crypto"

export type Algorithm = "rsa" | "ed25519"

export interface KeygenOptions {
  readonly algorithm?: Algorithm
  readonly domain: string
  readonly selector: string
  /** RSA modulus in bits (default 2048; RFC 8301 asks for at least 1024, 2048 is today's norm). */
  readonly bits?: number
}

export interface GeneratedKey {
  readonly privateKeyPem: string
  /** Where the record goes: `selector._domainkey.domain`. */
  readonly dnsRecordName: string
  readonly txtValue: string
}

// RFC 8463 publishes the raw 32-byte key; its SPKI DER is a fixed 12-byte prefix and then the key.
const ED25519_SPKI_PREFIX_LENGTH = 12

/** The `p=` value for a public key: SPKI DER for RSA, the raw key for Ed25519, in base64. */
export const publicKeyValue = (key: Crypto.KeyObject): string => {
  const der = key.export({ type: "spki", format: "der" })
  return (key.asymmetricKeyType === "ed25519" ? der.subarray(ED25519_SPKI_PREFIX_LENGTH) : der).toString("base64")
}

/** The TXT record value publishing the public half of `privateKey`. */
export const txtValueOf = (privateKey: Crypto.KeyObject): string => {
  const pub = Crypto.createPublicKey(privateKey)
  return `v=DKIM1; k=${pub.asymmetricKeyType === "ed25519" ? "ed25519" : "rsa"}; p=${publicKeyValue(pub)}`
}

export const keygen = (options: KeygenOptions): GeneratedKey => {
  const { privateKey } = options.algorithm === "ed25519"
    ? Crypto.generateKeyPairSync("ed25519")
    : Crypto.generateKeyPairSync("rsa", { modulusLength: options.bits ?? 2048 })
  return {
    privateKeyPem: String(privateKey.export({ type: "pkcs8", format: "pem" })),
    dnsRecordName: `${options.selector}._domainkey.${options.domain}`,
    txtValue: txtValueOf(privateKey)
  }
}

/** Reads a PEM private key; throws with a message naming what is wrong. */
export const privateKeyOf = (pem: string): Crypto.KeyObject => {
  const key = Crypto.createPrivateKey(pem)
  if (key.asymmetricKeyType !== "rsa" && key.asymmetricKeyType !== "ed25519") {
    throw new Error(`unsupported DKIM key type ${key.asymmetricKeyType ?? "unknown"} (use RSA or Ed25519)`)
  }
  return key
}
