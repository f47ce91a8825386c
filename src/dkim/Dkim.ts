/** DKIM keys and signing for plugins: `Dkim.Keys` (generation, loading) and `Dkim.Sign` (relaxed/relaxed signer). */
export * as Keys from "./Keys.ts"
export * as Sign from "./Sign.ts"
