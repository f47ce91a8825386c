// docs/examples/auth-oauth.config.ts: apps that hold OAuth 2.0 access tokens (OAUTHBEARER and
// XOAUTH2), and an HTTP service that checks app passwords for the clients that have no token.
import { defineConfig } from "smtp-bridge"

export default defineConfig({
  hostname: "smtp.example.com",
  listen: ["0.0.0.0:587"],
  tls: { cert: "/etc/ssl/mail/fullchain.pem", key: "/etc/ssl/mail/privkey.pem" },
  auth: [
    {
      type: "oauth",
      jwksUrl: "https://login.example.com/.well-known/jwks.json",
      issuer: "https://login.example.com/",
      audience: "smtp.example.com",
      identityClaim: "email"
    },
    // App passwords: POSTed as signed JSON; 200 { identity, senders } accepts, 401 refuses, 404 passes on.
    { type: "http", url: "https://accounts.internal.example.com/smtp-auth", secretEnv: "SMTP_AUTH_HMAC_KEY" }
  ],
  relay: "smtp://127.0.0.1:25?tls=none"
})
