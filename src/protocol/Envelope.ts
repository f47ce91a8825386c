/** The envelope of one SMTP transaction, with the ESMTP parameters that travel with it. */

/** A mailbox as written in a path, split at the last `@`. `local` keeps any quoting removed. */
export interface Mailbox {
  /** The local part, unquoted (`"john doe"@x` gives `john doe`). */
  readonly local: string
  /** The domain or address literal (`[192.0.2.1]`), as sent. */
  readonly domain: string
  /** The address as it should be written back into a path (quoted again when needed). */
  readonly address: string
}

/** MAIL FROM parameters (RFC 1870 SIZE, 6152 BODY, 6531 SMTPUTF8, 3461 RET/ENVID, 8689 REQUIRETLS). */
export interface MailParams {
  readonly size?: number
  readonly body?: "7BIT" | "8BITMIME" | "BINARYMIME"
  readonly smtputf8?: boolean
  readonly ret?: "FULL" | "HDRS"
  readonly envid?: string
  readonly requireTls?: boolean
  /** AUTH= parameter of RFC 4954, kept verbatim. */
  readonly auth?: string
  /** Every parameter as received, keys upper-cased; values undefined for bare keywords. */
  readonly raw: Readonly<Record<string, string | undefined>>
}

/** RCPT TO parameters (RFC 3461 NOTIFY and ORCPT). */
export interface RcptParams {
  readonly notify?: ReadonlyArray<"NEVER" | "SUCCESS" | "FAILURE" | "DELAY">
  readonly orcpt?: string
  readonly raw: Readonly<Record<string, string | undefined>>
}

export interface Recipient {
  readonly mailbox: Mailbox
  readonly params: RcptParams
}

export interface Envelope {
  /** `null` is the null reverse-path `<>`. */
  readonly mailFrom: Mailbox | null
  readonly mailParams: MailParams
  readonly recipients: ReadonlyArray<Recipient>
}
