// docs/examples/auth-ldap.config.ts: users in LDAP or Active Directory. Each login searches the
// user's entry as a service account, then binds as that entry with the password given.
import { defineConfig } from "smtp-bridge"

export default defineConfig({
  hostname: "smtp.example.com",
  listen: ["0.0.0.0:587"],
  tls: { cert: "/etc/ssl/mail/fullchain.pem", key: "/etc/ssl/mail/privkey.pem" },
  auth: [
    // Service accounts (printers, monitoring) that live in no directory: a local file, asked first.
    { type: "htpasswd", file: "/etc/smtp-bridge/service-accounts.htpasswd" },
    {
      type: "ldap",
      url: "ldaps://dc1.corp.example.com",
      base: "OU=Staff,DC=corp,DC=example,DC=com",
      // Active Directory: the sAMAccountName or the user principal name (alice@corp.example.com).
      filter: "(&(objectClass=user)(|(sAMAccountName=%s)(userPrincipalName=%s)))",
      bindDn: "CN=smtp-bridge,OU=Services,DC=corp,DC=example,DC=com",
      bindPasswordFile: "/run/secrets/ldap-bind-password",
      caFile: "/etc/ssl/certs/corp-root-ca.pem",
      // The addresses each user may send as (MAIL FROM and the header From).
      senderAttributes: ["mail", "otherMailbox"]
    }
  ],
  authCache: { ttl: "2 minutes", negativeTtl: "10 seconds" },
  relay: "smtp://mail.corp.example.com:25?tls=required"
})
