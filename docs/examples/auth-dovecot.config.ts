// docs/examples/auth-dovecot.config.ts: a Postfix + Dovecot shop. Users log in with the
// passwords Dovecot already checks for IMAP; mail goes on to Postfix on port 25.
import { defineConfig } from "smtp-bridge"

export default defineConfig({
  hostname: "smtp.example.com",
  listen: ["0.0.0.0:587"],
  listenTls: ["0.0.0.0:465"],
  tls: { cert: "/etc/ssl/mail/fullchain.pem", key: "/etc/ssl/mail/privkey.pem" },
  // Dovecot's auth socket, as Postfix uses it (service auth { unix_listener ... } in dovecot.conf).
  auth: ["dovecot:///var/spool/postfix/private/auth"],
  // Mail clients log in every few minutes: one Dovecot lookup per user and password per 5 minutes.
  authCache: { ttl: "5 minutes", negativeTtl: "30 seconds" },
  relay: "smtp://127.0.0.1:25?tls=none"
})
